"""FP32 ONNX export by the graph contract: export, check, infer shapes, simplify, tag."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import onnx
import torch
from torch import nn

import memgaze
from memgaze.atomic import write_bytes
from memgaze.console import console
from memgaze.errors import fail
from memgaze.export.graph import ExportGraph, GraphSpec, is_personalized

DEFAULT_OPSET = 17


def example_inputs(config: dict[str, Any], batch: int = 2) -> tuple[torch.Tensor, ...]:
    """Dummy graph inputs for tracing: a uint8 NHWC image batch (and user indices)."""
    height, width = config["input_size"]
    image = torch.randint(0, 256, (batch, height, width, 3), dtype=torch.uint8)
    if is_personalized(config):
        return image, torch.zeros(batch, dtype=torch.int64)
    return (image,)


def _simplify(model: onnx.ModelProto) -> onnx.ModelProto:
    """onnxslim simplification; on failure keep the unsimplified model with a warning."""
    try:
        import onnxslim

        slim = onnxslim.slim(model)
        onnx.checker.check_model(slim)
        return slim
    except Exception as exc:  # noqa: BLE001 - any failure of an optional optimizer
        console.print(f"[yellow]warning:[/yellow] onnxslim failed ({str(exc).splitlines()[0][:200]}); keeping the unsimplified graph")
        return model


def export_onnx(
    model: nn.Module, config: dict[str, Any], path: Path, opset: int = DEFAULT_OPSET, spec: GraphSpec | None = None
) -> onnx.ModelProto:
    """Export ``model`` wrapped in :class:`ExportGraph` to ``path``, at ``spec``'s input size (default:
    the checkpoint's) and tagged with its metadata; return the final ModelProto.

    Checked with ``onnx.checker`` and shape inference before and after onnxslim.
    """
    spec = spec or GraphSpec.from_config(config)
    config = spec.model_config(config)
    graph = ExportGraph(model, config).eval()
    inputs = example_inputs(config)
    names = ["image", "user"][: len(inputs)]
    axes: dict[str, dict[int, str]] = {name: {0: "batch"} for name in [*names, "score", "heatmap"]}
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="memgaze-onnx-") as tmp, torch.no_grad():
        raw = Path(tmp) / "raw.onnx"
        torch.onnx.export(
            graph, inputs, str(raw), input_names=names, output_names=["score", "heatmap"],
            dynamic_axes=axes, opset_version=opset, do_constant_folding=True, dynamo=False,
        )
        proto = onnx.load(str(raw))
    onnx.checker.check_model(proto, full_check=True)
    proto = _simplify(onnx.shape_inference.infer_shapes(proto, strict_mode=True))
    proto = onnx.shape_inference.infer_shapes(proto, strict_mode=True)
    onnx.checker.check_model(proto, full_check=True)
    traced = [int(d.dim_value) for d in proto.graph.output[1].type.tensor_type.shape.dim[2:]]
    if tuple(traced) != spec.map_size:
        fail(f"the traced heatmap is {traced}, not the {list(spec.map_size)} the model geometry gives; the export is not written")
    del proto.metadata_props[:]
    for key, value in spec.metadata().items():
        proto.metadata_props.add(key=key, value=value)
    proto.producer_name, proto.producer_version = "memgaze", memgaze.__version__
    write_bytes(path, proto.SerializeToString())
    return proto
