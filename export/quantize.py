"""Explicit INT8 Q/DQ quantization with ONNX Runtime in two schemes, plus a bounded sensitivity pass.

``TENSORRT`` (``model.int8.onnx``): symmetric int8 activations (zero point 0), per-channel symmetric
int8 weights — what TensorRT's explicit-quantization path takes. ``ONNXRUNTIME_CPU``
(``model.int8.ort.onnx``): uint8 asymmetric activations and 7-bit per-channel weights (U8S8 with
``reduce_range``), which ONNX Runtime's x86 CPU kernels fuse into QLinear* ops; its input conv also
stays float so the input transpose is not pushed into the float preprocessing (see
docs/internals.md). In both, the uint8 preprocessing at the graph head and the softmax/sigmoid tail
stay in float.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.calibrate import create_calibrator, save_tensors_data
from onnxruntime.quantization.qdq_loss_debug import (
    collect_activations,
    compute_signal_to_quantization_noice_ratio,
    create_activation_matching,
    modify_model_output_intermediate_tensors,
)
from onnxruntime.quantization.shape_inference import quant_pre_process

from memgaze.atomic import atomic_path
from memgaze.gate import AccuracyReport

METHODS = {"entropy": CalibrationMethod.Entropy, "percentile": CalibrationMethod.Percentile, "minmax": CalibrationMethod.MinMax}
COMPUTE_OPS = {"Conv", "ConvTranspose", "Gemm", "MatMul"}
# The histogram of TensorRT's entropy calibrator. quantize_static's own entropy calibrator keeps
# 128 bins for 128 quantized bins: a single candidate threshold, the min/max range.
ENTROPY_BINS, ENTROPY_QUANTIZED_BINS = 2048, 128


@dataclass(frozen=True)
class Scheme:
    """One INT8 flavour: the ``quantize_static`` settings and how the manifest describes them."""

    name: str
    activation_type: QuantType
    reduce_range: bool
    extra_options: dict[str, Any]
    activations: str
    weights: str
    float_input_conv: bool  # keep the first compute op after the preprocessing in float
    op_types: tuple[str, ...] | None = None  # quantize only these op types (None: every type ORT can)
    exact_qdq: bool = False  # judge accuracy by exact Q/DQ emulation (the target is not ORT's CPU kernels)


TENSORRT = Scheme(
    "tensorrt", QuantType.QInt8, False,
    {
        "ActivationSymmetric": True,  # int8 activations with zero point 0, as TensorRT requires
        "WeightSymmetric": True,
        # Biases stay float: TensorRT dequantizes INT8 only (8.6 refuses an INT32 DequantizeLinear; 10.x takes INT8,
        # FP8 and INT4) and folds the float bias into the INT8 convolution itself, as NVIDIA's toolkits leave it.
        "QuantizeBias": False,
        # Removable activations (Relu/Clip) are only dropped for asymmetric activations anyway; keeping
        # them explicit is what TensorRT, which fuses Conv+Relu itself, expects.
        "QDQKeepRemovableActivations": True,
        # No Q/DQ on a compute op's output: before a kept ReLU6 that output spans the whole
        # pre-activation range (±125 in EfficientNet-Lite0's stem), which leaves the [0, 6] that
        # survives the clip a handful of levels; the next layer's input Q/DQ quantizes it after the clip.
        "OpTypesToExcludeOutputQuantization": sorted(COMPUTE_OPS),
    },
    "int8 symmetric per-tensor", "int8 symmetric per-channel", False,
    # Q/DQ on the inputs of the layers TensorRT runs in INT8 (as NVIDIA's quantization toolkit places them);
    # the elementwise ops between them (hardswish, SE and attention gates, FiLM) stay float, fused by TensorRT.
    op_types=tuple(sorted(COMPUTE_OPS)),
    exact_qdq=True,
)
# U8S8 is what ORT's x86 kernels are built for; reduce_range (7-bit weights) avoids the int16
# saturation of VPMADDUBSW on CPUs without VNNI and costs nothing measurable in speed.
ONNXRUNTIME_CPU = Scheme(
    "onnxruntime-cpu", QuantType.QUInt8, True, {"WeightSymmetric": True},
    "uint8 asymmetric per-tensor", "int8 symmetric per-channel, 7-bit (reduce_range)", True,
)


@dataclass
class QuantizeResult:
    """The INT8 model's accuracy against FP32 and what was kept in float."""

    report: AccuracyReport
    excluded: list[str]
    scheme: Scheme
    kept_float: list[str] = field(default_factory=list)
    rounds: int = 1

    def summary(self, method: str) -> dict[str, Any]:
        return {
            "method": method, "format": "QDQ", "scheme": self.scheme.name, "activations": self.scheme.activations,
            "weights": self.scheme.weights, "excluded_nodes": len(self.excluded),
            "kept_float_by_sensitivity": self.kept_float, "sensitivity_rounds": self.rounds - 1,
        }


def _name_nodes(model: onnx.ModelProto) -> None:
    """Give every node a unique name (quantizer exclusions go by name)."""
    seen: set[str] = set()
    for i, node in enumerate(model.graph.node):
        if not node.name or node.name in seen:
            node.name = f"{node.op_type}_{i}"
        seen.add(node.name)


def _graph_maps(model: onnx.ModelProto) -> tuple[dict[str, list[onnx.NodeProto]], dict[str, onnx.NodeProto]]:
    consumers: dict[str, list[onnx.NodeProto]] = {}
    producer: dict[str, onnx.NodeProto] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
        for name in node.output:
            producer[name] = node
    return consumers, producer


def float_nodes(model: onnx.ModelProto, input_conv: bool = False) -> list[str]:
    """Nodes that stay float: the uint8 preprocessing head (from ``image`` up to the first compute
    op, and that op too with ``input_conv``) and the output heads (from each output back to, and
    including, the last compute op: the 1-channel map conv, the score linear, softmax and sigmoid),
    plus every Softmax (attention weights in [0, 1] lose most of their resolution in symmetric
    int8). All tiny and precision-critical."""
    consumers, producer = _graph_maps(model)
    keep: dict[str, None] = {n.name: None for n in model.graph.node if n.op_type == "Softmax"}
    frontier = ["image"]
    while frontier:
        for consumer in consumers.get(frontier.pop(), []):
            compute = consumer.op_type in COMPUTE_OPS
            if (input_conv or not compute) and consumer.name not in keep:
                keep[consumer.name] = None
                frontier.extend([] if compute else consumer.output)
    frontier, seen = [out.name for out in model.graph.output], set[str]()
    while frontier:
        node = producer.get(frontier.pop())
        if node is not None and node.name not in seen:
            seen.add(node.name)
            keep[node.name] = None
            if node.op_type not in COMPUTE_OPS:
                frontier.extend(node.input)
    for out in model.graph.output:  # a quantized consumer would put Q/DQ on an output tensor
        keep.update((consumer.name, None) for consumer in consumers.get(out.name, []))
    return list(keep)


def prepare_for_quantization(fp32: Path, out: Path) -> onnx.ModelProto:
    """ORT's quantization pre-processing (shape inference + optimization), with named nodes."""
    quant_pre_process(str(fp32), str(out), skip_symbolic_shape=True)
    model = onnx.load(str(out))
    _name_nodes(model)
    onnx.save(model, str(out))
    return model


def quantize_qdq(
    pre: Path, out: Path, reader: CalibrationDataReader, method: str, exclude: list[str], ranges: Path, scheme: Scheme,
) -> None:
    """One ``quantize_static`` run; activation ranges are computed once and cached in ``ranges``."""
    reader.rewind()
    logging.getLogger().setLevel(logging.ERROR)  # ORT's quantizer logs advice through the root logger
    with contextlib.redirect_stdout(io.StringIO()):  # ... and prints calibration progress
        _quantize_static(pre, out, reader, method, exclude, ranges, scheme)


def entropy_ranges(pre: Path, reader: CalibrationDataReader, ranges: Path) -> None:
    """Activation ranges that minimise the KL divergence over a 2048-bin histogram (TensorRT's entropy
    calibration), written to ``ranges``, the calibration cache :func:`quantize_static` then reads."""
    calibrator = create_calibrator(
        pre, [], augmented_model_path=str(ranges.with_suffix(".augmented.onnx")), calibrate_method=CalibrationMethod.Entropy,
        extra_options={"num_bins": ENTROPY_BINS, "num_quantized_bins": ENTROPY_QUANTIZED_BINS},
    )
    reader.rewind()
    calibrator.collect_data(reader)
    save_tensors_data(calibrator.compute_data(), ranges)
    reader.rewind()


def _quantize_static(
    pre: Path, out: Path, reader: CalibrationDataReader, method: str, exclude: list[str], ranges: Path, scheme: Scheme,
) -> None:
    if method == "entropy" and not ranges.is_file():
        entropy_ranges(pre, reader, ranges)
    quantize_static(
        str(pre), str(out), reader, quant_format=QuantFormat.QDQ, per_channel=True, reduce_range=scheme.reduce_range,
        activation_type=scheme.activation_type, weight_type=QuantType.QInt8, nodes_to_exclude=exclude,
        calibrate_method=METHODS[method], extra_options=dict(scheme.extra_options), calibration_cache_path=str(ranges),
        op_types_to_quantize=list(scheme.op_types) if scheme.op_types else None,
    )


def sensitivity(pre: onnx.ModelProto, qdq: Path, reader: CalibrationDataReader, work: Path) -> list[str]:
    """Compute layers (Conv/Gemm/MatMul) ordered by the worst local Q/DQ damage (lowest SQNR) of
    their input or output activations, worst first."""
    augmented = work / "debug.onnx"
    modify_model_output_intermediate_tensors(str(qdq), str(augmented))
    reader.rewind()
    matching = create_activation_matching(collect_activations(str(augmented), reader))
    sqnr = {name: compute_signal_to_quantization_noice_ratio(m["pre_qdq"], m["post_qdq"]) for name, m in matching.items()}
    damage = {
        node.name: min(sqnr.get(t, np.inf) for t in [*node.input, *node.output])
        for node in pre.graph.node if node.op_type in COMPUTE_OPS
    }
    return [name for name in sorted(damage, key=damage.__getitem__) if np.isfinite(damage[name])]


def quantize_int8(
    fp32: Path, out: Path, reader: CalibrationDataReader, evaluate: Callable[[Path], AccuracyReport],
    method: str = "minmax", scheme: Scheme = TENSORRT, max_rounds: int = 3, first_step: int = 2,
) -> QuantizeResult:
    """Quantize ``fp32`` to a Q/DQ ``out`` in ``scheme``; if ``evaluate`` says the gate fails, keep the
    most damaged layers in float (2, then 4, then 8 more...) for at most ``max_rounds`` extra rounds."""
    with tempfile.TemporaryDirectory(prefix="memgaze-quant-") as tmp:
        work = Path(tmp)
        pre_path, candidate, ranges = work / "pre.onnx", work / "int8.onnx", work / "ranges.json"
        pre = prepare_for_quantization(fp32, pre_path)
        exclude = float_nodes(pre, scheme.float_input_conv)
        quantize_qdq(pre_path, candidate, reader, method, exclude, ranges, scheme)
        result = QuantizeResult(evaluate(candidate), exclude, scheme)
        step = first_step
        while not result.report.passed and result.rounds <= max_rounds:
            worst = [n for n in sensitivity(pre, candidate, reader, work) if n not in result.excluded][:step]
            if not worst:
                break
            excluded = [*result.excluded, *worst]
            quantize_qdq(pre_path, candidate, reader, method, excluded, ranges, scheme)
            result = QuantizeResult(evaluate(candidate), excluded, scheme, [*result.kept_float, *worst], result.rounds + 1)
            step *= 2
        final = onnx.load(str(candidate))
        _drop_unused_domains(final)
        with atomic_path(out) as target:
            target.write_bytes(final.SerializeToString())
    return result


def _drop_unused_domains(model: onnx.ModelProto) -> None:
    """Keep only the opset imports some node uses (the quantizer declares ONNX Runtime's contrib domains too)."""
    used = {node.domain for node in model.graph.node} | {""}
    kept = [o for o in model.opset_import if o.domain in used or o.domain == "ai.onnx"]
    del model.opset_import[:]
    model.opset_import.extend(kept)
