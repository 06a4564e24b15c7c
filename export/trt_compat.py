"""Will TensorRT's ONNX parser read this file? A static check of an ONNX model against the parser's documented rules.

A Jetson builds its plan with TensorRT's own ONNX parser (onnx-tensorrt), which refuses some graphs that ONNX
Runtime runs happily. ``memgaze-export`` runs this check on every file meant for TensorRT (``model.onnx`` and
``model.int8.onnx``) and records the verdict in the manifest; ``python -m memgaze.export.trt_compat FILE...`` runs
it on any file. It is a check of the *file*, so it catches what typed Python calls cannot.

The rules, and where each is written down:

- [OPS-8.5] onnx-tensorrt ``docs/operators.md`` of the 8.5/8.6 releases (JetPack 5): "TensorRT 8.5 supports
  operators up to Opset 17"; the operator support matrix (:data:`OPS_8`); "DequantizeLinear | INT8 |
  `x_zero_point` must be zero"; "QuantizeLinear | FP32, FP16 | `y_zero_point` must be 0"; `axes` of Slice and
  Squeeze must be initializers.
- [OPS-10] onnx-tensorrt ``docs/operators.md`` of the 10.x releases (JetPack 6): "TensorRT 10.0 supports operators
  in the inclusive range of opset 9 to opset 20" (later 10.x minors accept more; 20 is what every 10.x reads);
  the support matrix (:data:`OPS_10`); "UINT8 is only supported as network input or output tensor types";
  "DequantizeLinear | INT8, FP8, FP4, INT4 | `x_zero_point` must be zero"; "QuantizeLinear | FP32, FP16, BF16 |
  `y_zero_point` must be 0"; Reduce* `axes` must be an initializer.
- [IMPORTER] onnx-tensorrt ``ModelImporter.cpp`` (8.6 and 10.x): an intermediate UINT8 tensor fails the import
  with "TensorRT does not support UINT8 types for intermediate tensors"; nodes outside the default ONNX domain
  need a plugin.
- [QUANT] TensorRT developer guide, "Working with Quantized Types" (8.6, 10.x): symmetric quantization only (zero
  points 0), scales positive constants, a QuantizeLinear's output consumed by a DequantizeLinear; TensorRT 11
  builds every Q/DQ network strongly typed (the same rules, no precision flags).

TensorRT 11 is checked against the 10.x rules (its parser is 10.x's, strongly typed): :data:`TARGETS` says which
rules each version gets. ``onnx`` only; never imported by the runtime.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

from memgaze.errors import fail

_COMMON = """Abs Acos Acosh Add And ArgMax ArgMin Asin Asinh Atan Atanh AveragePool BatchNormalization Cast Ceil Celu
Clip Concat Constant ConstantOfShape Conv ConvTranspose Cos Cosh CumSum DepthToSpace DequantizeLinear Div Dropout
Einsum Elu Equal Erf Exp Expand EyeLike Flatten Floor Gather GatherElements GatherND Gemm GlobalAveragePool
GlobalLpPool GlobalMaxPool Greater GreaterOrEqual GridSample GRU HardSigmoid HardSwish Identity If ImageScaler
InstanceNormalization IsNaN LeakyRelu Less LessOrEqual Log LogSoftmax Loop LRN LSTM LpNormalization LpPool MatMul
Max MaxPool Mean MeanVarianceNormalization Min Mod Mul Neg NonMaxSuppression NonZero Not OneHot Or Pad
ParametricSoftplus Pow PRelu QuantizeLinear RandomNormal RandomNormalLike RandomUniform RandomUniformLike Range
Reciprocal ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp ReduceMax ReduceMean ReduceMin ReduceProd ReduceSum
ReduceSumSquare Relu Reshape Resize ReverseSequence RNN RoiAlign Round ScaledTanh Scan Scatter ScatterElements
ScatterND Selu Shape Shrink Sigmoid Sign Sin Sinh Size Slice Softmax Softplus Softsign SpaceToDepth Split Sqrt
Squeeze Sub Sum Tan Tanh ThresholdedRelu Tile TopK Transpose Trilu Unsqueeze Upsample Where Xor"""
OPS_8 = frozenset(_COMMON.split())  # [OPS-8.5]: every operator marked "Y"
OPS_10 = OPS_8 | frozenset(  # [OPS-10]: those, and what 10.x added ("Y" rows)
    "BlackmanWindow CastLike GroupNormalization HammingWindow HannWindow Hardmax IsInf LayerNormalization Mish".split()
)
DEFAULT_DOMAINS = ("", "ai.onnx")
FLOAT_TYPES = {TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.BFLOAT16}
RESIZE_MODES = {"nearest", "linear"}
RESIZE_TRANSFORMS = {"half_pixel", "pytorch_half_pixel", "tf_half_pixel_for_nn", "asymmetric", "align_corners"}
AXES_INPUT = {"Slice": 3, "Squeeze": 1, "Unsqueeze": 1}  # [OPS-8.5]: these `axes` inputs must be constants


@dataclass(frozen=True)
class Target:
    """The parser rules of one TensorRT release line."""

    name: str
    opsets: tuple[int, int]  # inclusive range of default-domain opsets the parser reads
    operators: frozenset[str]
    dequantize_types: frozenset[int]  # element types a DequantizeLinear may take


QUANTIZED_10 = frozenset({TensorProto.INT8, TensorProto.FLOAT8E4M3FN, TensorProto.INT4})
TARGETS = {  # by TensorRT major version
    "8": Target("8.5/8.6", (1, 17), OPS_8, frozenset({TensorProto.INT8})),  # JetPack 5
    "10": Target("10.x", (9, 20), OPS_10, QUANTIZED_10),  # JetPack 6
    "11": Target("11.x", (9, 20), OPS_10, QUANTIZED_10),
}


@dataclass(frozen=True)
class Finding:
    """One rule the file breaks: which rule, where, and for which TensorRT versions."""

    rule: str
    where: str
    message: str
    versions: tuple[str, ...]

    def line(self) -> str:
        return f"[{self.rule}] {self.where}: {self.message} (TensorRT {', '.join(self.versions)})"


class _Graph:
    """A shape-inferred model with the lookups the rules need."""

    def __init__(self, model: onnx.ModelProto) -> None:
        try:
            model = onnx.shape_inference.infer_shapes(model)
        except Exception:  # noqa: BLE001 - an uninferable graph is still checked with the types it declares
            pass
        self.model = model
        graph = model.graph
        self.initializers = {t.name: t for t in graph.initializer}
        self.constants = {n.output[0]: n for n in graph.node if n.op_type == "Constant" and n.output}
        self.inputs = {v.name for v in graph.input} - set(self.initializers)
        self.outputs = {v.name for v in graph.output}
        self.types: dict[str, int] = {}
        for value in [*graph.input, *graph.output, *graph.value_info]:
            if value.type.HasField("tensor_type"):
                self.types[value.name] = value.type.tensor_type.elem_type
        self.types.update({name: t.data_type for name, t in self.initializers.items()})
        for name, node in self.constants.items():
            value = next((a.t for a in node.attribute if a.name == "value"), None)
            if value is not None:
                self.types[name] = value.data_type
        self.consumers: dict[str, list[onnx.NodeProto]] = {}
        for node in graph.node:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)

    def constant(self, name: str) -> np.ndarray | None:
        """The value of an initializer or a Constant node's output (None when it is computed)."""
        if name in self.initializers:
            return numpy_helper.to_array(self.initializers[name])
        node = self.constants.get(name)
        value = None if node is None else next((a.t for a in node.attribute if a.name == "value"), None)
        return None if value is None else numpy_helper.to_array(value)

    def tensors(self) -> Iterable[str]:
        """Every tensor name the graph produces or holds."""
        yield from self.initializers
        for node in self.model.graph.node:
            yield from (name for name in node.output if name)


def _where(node: onnx.NodeProto) -> str:
    return f"{node.op_type} node {node.name!r}" if node.name else f"{node.op_type} node"


def _opset(graph: _Graph, targets: list[Target]) -> list[Finding]:
    """[OPS-8.5]/[OPS-10]: the default-domain opset must be one the parser reads."""
    version = next((o.version for o in graph.model.opset_import if o.domain in DEFAULT_DOMAINS), None)
    if version is None:
        return [Finding("opset", "model", "no default-domain opset import", tuple(t.name for t in targets))]
    bad = tuple(t.name for t in targets if not t.opsets[0] <= version <= t.opsets[1])
    ranges = "; ".join(f"{t.name}: {t.opsets[0]}–{t.opsets[1]}" for t in targets if t.name in bad)
    return [Finding("opset", "model", f"opset {version} is outside what the parser reads ({ranges})", bad)] if bad else []


def _operators(graph: _Graph, targets: list[Target]) -> list[Finding]:
    """[IMPORTER]/[OPS-*]: default-domain operators of the support matrix only (others need a plugin)."""
    findings = []
    for node in graph.model.graph.node:
        if node.domain not in DEFAULT_DOMAINS:
            findings.append(Finding("domain", _where(node), f"operator of domain {node.domain!r} has no TensorRT importer",
                                    tuple(t.name for t in targets)))
            continue
        bad = tuple(t.name for t in targets if node.op_type not in t.operators)
        if bad:
            findings.append(Finding("operator", _where(node), f"{node.op_type} is not in the parser's support matrix", bad))
    return findings


def _uint8(graph: _Graph, targets: list[Target]) -> list[Finding]:
    """[IMPORTER]/[OPS-10]: UINT8 only as a network input or output; a UINT8 input is only cast to a float type."""
    names = tuple(t.name for t in targets)
    findings = []
    for tensor in dict.fromkeys(graph.tensors()):
        if graph.types.get(tensor) == TensorProto.UINT8 and tensor not in graph.outputs:
            findings.append(Finding("uint8", f"tensor {tensor!r}", "UINT8 tensor inside the graph (only network inputs "
                                    "and outputs may be UINT8)", names))
    for name in sorted(graph.inputs):
        if graph.types.get(name) != TensorProto.UINT8:
            continue
        for node in graph.consumers.get(name, []):
            target = next((a.i for a in node.attribute if a.name == "to"), None)
            if node.op_type != "Cast" or target not in FLOAT_TYPES:
                findings.append(Finding("uint8", _where(node), f"takes the UINT8 input {name!r} directly; cast it to a "
                                        "float type first", names))
    return findings


def _zero_point_and_scale(graph: _Graph, node: onnx.NodeProto, names: tuple[str, ...]) -> list[Finding]:
    """[QUANT]: a constant, positive, finite scale; no zero point, or a zero point of zeros, INT8 on a
    QuantizeLinear (its type is the quantized tensor's; a DequantizeLinear's input type is checked on its own)."""
    findings = []
    scale = graph.constant(node.input[1]) if len(node.input) > 1 else None
    if scale is None:
        findings.append(Finding("scale", _where(node), "scale is not a constant (TensorRT needs it at build time)", names))
    elif not (np.all(np.isfinite(scale)) and np.all(scale > 0)):
        findings.append(Finding("scale", _where(node), "scale has zero, negative or non-finite values", names))
    if len(node.input) > 2 and node.input[2]:
        zero = graph.constant(node.input[2])
        quantize = node.op_type == "QuantizeLinear"
        if quantize and graph.types.get(node.input[2]) not in (TensorProto.INT8, TensorProto.FLOAT8E4M3FN, TensorProto.INT4):
            findings.append(Finding("zero-point", _where(node), "zero point is not INT8 (an unsigned zero point makes the "
                                    "quantized tensor UINT8)", names))
        if zero is None or np.any(zero.astype(np.float64) != 0):
            findings.append(Finding("zero-point", _where(node), "zero point is not a constant 0 (TensorRT quantizes "
                                    "symmetrically)", names))
    return findings


def _quantization(graph: _Graph, targets: list[Target]) -> list[Finding]:
    """[OPS-*]/[QUANT]: what a DequantizeLinear takes, zero points, scales, and Q→DQ pairs."""
    names = tuple(t.name for t in targets)
    findings = []
    for node in graph.model.graph.node:
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear") or node.domain not in DEFAULT_DOMAINS:
            continue
        findings += _zero_point_and_scale(graph, node, names)
        if node.op_type == "DequantizeLinear":
            kind = graph.types.get(node.input[0])
            bad = tuple(t.name for t in targets if kind not in t.dequantize_types)
            if bad:
                label = TensorProto.DataType.Name(kind) if kind is not None else "an unknown type"
                findings.append(Finding("dequantize", _where(node), f"dequantizes {label} (input {node.input[0]!r}); "
                                        "TensorRT dequantizes only quantized types (INT8, and FP8/INT4 from 10.x)", bad))
        else:
            odd = [c for c in graph.consumers.get(node.output[0], []) if c.op_type != "DequantizeLinear"]
            if odd or node.output[0] in graph.outputs:
                findings.append(Finding("qdq-pair", _where(node), "its output is not consumed by DequantizeLinear alone",
                                        names))
    return findings


def _constant_inputs(graph: _Graph, targets: list[Target]) -> list[Finding]:
    """[OPS-8.5]/[OPS-10]: `axes` of Slice/Squeeze/Unsqueeze/Reduce* must be build-time constants; Resize modes
    the parser implements."""
    names = tuple(t.name for t in targets)
    findings = []
    for node in graph.model.graph.node:
        # Reduce* take `axes` as their second input (ReduceSum from opset 13, the others from 18) [OPS-10]
        index = AXES_INPUT.get(node.op_type, 1 if node.op_type.startswith("Reduce") else None)
        if index is not None and len(node.input) > index and node.input[index] and graph.constant(node.input[index]) is None:
            findings.append(Finding("constant", _where(node), "`axes` is computed, not a constant", names))
        if node.op_type == "Resize":
            attrs = {a.name: a.s.decode() for a in node.attribute if a.type == onnx.AttributeProto.STRING}
            mode = attrs.get("mode", "nearest")
            transform = attrs.get("coordinate_transformation_mode", "half_pixel")
            if mode not in RESIZE_MODES or transform not in RESIZE_TRANSFORMS:
                findings.append(Finding("resize", _where(node), f"mode {mode!r} / {transform!r} is not supported", names))
    return findings


RULES = (_opset, _operators, _uint8, _quantization, _constant_inputs)


def check_model(model: onnx.ModelProto, versions: Iterable[str] = tuple(TARGETS)) -> list[Finding]:
    """Every rule of :data:`TARGETS` ``versions`` that ``model`` breaks (empty: the parser's documented rules hold)."""
    targets = [TARGETS[v] for v in versions]
    graph = _Graph(model)
    return [finding for rule in RULES for finding in rule(graph, targets)]


def check_file(path: Path, versions: Iterable[str] = tuple(TARGETS)) -> list[Finding]:
    """:func:`check_model` on the ONNX file at ``path``."""
    return check_model(onnx.load(str(path)), versions)


def summary(findings: list[Finding], versions: Iterable[str] = tuple(TARGETS)) -> dict[str, object]:
    """What the manifest records of one file's check."""
    return {"tensorrt": [TARGETS[v].name for v in versions], "rules": [rule.__name__.strip("_") for rule in RULES], "passed": not findings,
            "findings": [f.line() for f in findings[:20]], "total_findings": len(findings)}


def require_parseable(path: Path) -> dict[str, object]:
    """The manifest's record of ``path``'s check; a one-line error naming the first broken rule when it fails."""
    findings = check_file(path)
    if findings:
        more = f" and {len(findings) - 1} more" if len(findings) > 1 else ""
        fail(f"{path.name} would not parse in TensorRT: {findings[0].line()}{more}; the bundle is not written")
    return summary(findings)


def main(argv: list[str] | None = None) -> int:
    """``python -m memgaze.export.trt_compat FILE... [--trt 8.5 10 11]``: one line per finding; exit 1 when any."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--trt", nargs="+", choices=list(TARGETS), default=list(TARGETS), help="TensorRT major versions")
    args = parser.parse_args(argv)
    failed = 0
    for path in args.files:
        if not path.is_file():
            print(f"{path}: no such file", file=sys.stderr)
            failed += 1
            continue
        findings = check_file(path, args.trt)
        for finding in findings:
            print(f"{path}: {finding.line()}")
        names = ", ".join(TARGETS[v].name for v in args.trt)
        verdict = "passes" if not findings else f"{len(findings)} finding(s) against"
        print(f"{path}: {verdict} TensorRT {names}'s documented ONNX parser rules")
        failed += bool(findings)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
