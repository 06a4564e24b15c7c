"""TensorRT calibration cache (text format) from the activation scales of a Q/DQ graph.

TensorRT's calibrators write ``TRT-<version>-EntropyCalibration2`` and then one
``tensor_name: <hex of the big-endian float32 scale>`` line per tensor; a build of the FP32
``model.onnx`` with implicit INT8 quantization can read it instead of calibrating again.
"""

from __future__ import annotations

import struct
from pathlib import Path

import onnx
from onnx import numpy_helper

from memgaze.atomic import write_text

DEFAULT_TRT_VERSION = "8.6.1"  # JetPack 6.0; the header only has to match where it is used


def version_number(version: str) -> int:
    """TensorRT's ``NV_TENSORRT_VERSION`` for a version string: 8.6.1 -> 8601, 10.3.0 -> 100300."""
    parts = [int(p) for p in (version.split(".") + ["0", "0"])[:3]]
    major, minor, patch = parts
    return major * (10000 if major >= 10 else 1000) + minor * 100 + patch


def activation_scales(model: onnx.ModelProto) -> dict[str, float]:
    """Per-tensor scales of the activations the Q/DQ graph quantizes (weights are skipped)."""
    initializers = {init.name: init for init in model.graph.initializer}
    scales: dict[str, float] = {}
    for node in model.graph.node:
        if node.op_type != "QuantizeLinear" or node.input[0] in initializers:
            continue
        scale = numpy_helper.to_array(initializers[node.input[1]]).reshape(-1)
        if scale.size == 1:
            scales.setdefault(node.input[0], float(scale[0]))
    return scales


def encode_scale(scale: float) -> str:
    """Hex of the big-endian float32 bits, as TensorRT writes them."""
    return struct.pack(">f", scale).hex()


def decode_scale(text: str) -> float:
    """Inverse of :func:`encode_scale`."""
    return float(struct.unpack(">f", bytes.fromhex(text.strip().zfill(8)))[0])


def cache_text(scales: dict[str, float], trt_version: str = DEFAULT_TRT_VERSION) -> str:
    """The calibration cache text for ``scales``."""
    lines = [f"TRT-{version_number(trt_version)}-EntropyCalibration2"]
    lines += [f"{name}: {encode_scale(scale)}" for name, scale in scales.items()]
    return "\n".join(lines) + "\n"


def write_calibration_cache(qdq_model: Path, out: Path, trt_version: str = DEFAULT_TRT_VERSION) -> int:
    """Write ``out`` from the Q/DQ graph ``qdq_model``; return the number of tensors."""
    scales = activation_scales(onnx.load(str(qdq_model)))
    write_text(out, cache_text(scales, trt_version))
    return len(scales)


def read_calibration_cache(path: Path) -> tuple[str, dict[str, float]]:
    """(header, {tensor: scale}) of a TensorRT calibration cache."""
    header, *lines = path.read_text().splitlines()
    scales = {}
    for line in lines:
        name, _, value = line.rpartition(":")
        scales[name] = decode_scale(value)
    return header, scales
