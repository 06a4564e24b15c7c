"""The static check of TensorRT's ONNX parser rules (memgaze.export.trt_compat) on real ONNX files: the two faults of
memgaze's earlier export reproduced on files made the old way, the fixed export passing, and each other rule."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
from torch import nn

from memgaze.errors import MemgazeError
from memgaze.export.trt_compat import TARGETS, check_file, check_model, main, require_parseable

SIZE = 32


class Net(nn.Module):
    """uint8 NHWC image → a score; ``cast_first`` as memgaze exports now, else as it exported before (transpose first)."""

    def __init__(self, cast_first: bool) -> None:
        super().__init__()
        self.cast_first = cast_first
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.head = nn.Linear(4, 1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = image.float().permute(0, 3, 1, 2) if self.cast_first else image.permute(0, 3, 1, 2).float()
        return torch.sigmoid(self.head(torch.relu(self.conv(x / 255.0)).mean(dim=(2, 3)))).reshape(-1)


def exported(folder: Path, cast_first: bool) -> Path:
    torch.manual_seed(0)
    path = folder / f"{'new' if cast_first else 'old'}.onnx"
    image = torch.randint(0, 256, (1, SIZE, SIZE, 3), dtype=torch.uint8)
    torch.onnx.export(Net(cast_first).eval(), (image,), str(path), input_names=["image"], output_names=["score"],
                      dynamic_axes={"image": {0: "n"}}, opset_version=17, dynamo=False)
    return path


class Frames(CalibrationDataReader):
    def __init__(self) -> None:
        rng = np.random.default_rng(0)
        self.items = iter([{"image": rng.integers(0, 256, (1, SIZE, SIZE, 3), dtype=np.uint8)} for _ in range(4)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self.items, None)


def quantized(fp32: Path, quantize_bias: bool) -> Path:
    """Symmetric int8 Q/DQ by ONNX Runtime: with its default of quantizing biases (memgaze before), or without."""
    out = fp32.with_name(fp32.stem + f".int8{'.bias' if quantize_bias else ''}.onnx")
    quantize_static(str(fp32), str(out), Frames(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, op_types_to_quantize=["Conv", "Gemm"],
                    extra_options={"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": quantize_bias})
    return out


def rules(findings: list) -> set[str]:
    return {f.rule for f in findings}


def test_the_old_export_faults_are_found_and_the_new_export_passes(tmp_path: Path) -> None:
    old = exported(tmp_path, cast_first=False)
    found = check_file(old)
    assert rules(found) == {"uint8"}  # a UINT8 Transpose output inside the graph, and a Transpose taking the UINT8 input
    assert any("Transpose" in f.where for f in found) and all(f.versions == ("8.5/8.6", "10.x", "11.x") for f in found)
    biased = check_file(quantized(exported(tmp_path, cast_first=True), quantize_bias=True))
    assert rules(biased) == {"dequantize"} and all("dequantizes INT32" in f.message for f in biased)
    assert check_file(exported(tmp_path, cast_first=True)) == []
    assert check_file(quantized(exported(tmp_path, cast_first=True), quantize_bias=False)) == []


def test_the_cli_lists_every_finding_and_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old, new = exported(tmp_path, cast_first=False), exported(tmp_path, cast_first=True)
    assert main([str(old), str(new)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert sum("[uint8]" in line for line in lines) == 2
    assert lines[-1].endswith("passes TensorRT 8.5/8.6, 10.x, 11.x's documented ONNX parser rules")
    with pytest.raises(MemgazeError, match=r"^old\.onnx would not parse in TensorRT: \[uint8\] .* and 1 more; the bundle is not written$"):
        require_parseable(old)


def graph(nodes: list, inputs: list, outputs: list, initializers: list = (), opset: int = 17) -> onnx.ModelProto:
    model = helper.make_model(helper.make_graph(nodes, "g", inputs, outputs, list(initializers)),
                              opset_imports=[helper.make_opsetid("", opset), helper.make_opsetid("com.microsoft", 1)])
    return model


def float_input(name: str = "x") -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, 4])


def test_each_other_rule_is_checked() -> None:
    x, y = float_input(), helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    scale = numpy_helper.from_array(np.array(0.1, np.float32), "s")
    uint8_zero = numpy_helper.from_array(np.array(128, np.uint8), "z")
    asymmetric = graph([helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
                        helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"])], [x], [y], [scale, uint8_zero])
    found = check_model(asymmetric)
    assert {"zero-point", "uint8", "dequantize"} <= rules(found)  # UINT8 quantized tensor, non-zero zero point
    assert rules(check_model(graph([helper.make_node("Relu", ["x"], ["y"])], [x], [y], opset=19))) == {"opset"}
    assert check_model(graph([helper.make_node("Relu", ["x"], ["y"])], [x], [y], opset=19), ["10"]) == []
    contrib = graph([helper.make_node("FusedGelu", ["x"], ["y"], domain="com.microsoft")], [x], [y])
    assert rules(check_model(contrib)) == {"domain"}
    unknown = graph([helper.make_node("Col2Im", ["x", "x", "x"], ["y"])], [x], [y])
    assert "operator" in rules(check_model(unknown))
    axes = helper.make_tensor_value_info("axes", TensorProto.INT64, [1])
    computed = graph([helper.make_node("ReduceSum", ["x", "axes"], ["y"])], [x, axes], [y])
    assert rules(check_model(computed)) == {"constant"}
    cubic = graph([helper.make_node("Resize", ["x", "", "sc"], ["y"], mode="cubic")], [x], [y],
                  [numpy_helper.from_array(np.ones(2, np.float32), "sc")])
    assert rules(check_model(cubic)) == {"resize"}
    assert set(TARGETS) == {"8", "10", "11"}
