"""The exportable graph: uint8 NHWC BGR frames in, ``score`` and ``heatmap`` out.

Everything a camera frame needs besides resizing happens inside the graph (docs/design.md,
"The exported graph"): uint8→float, NHWC→NCHW, BGR→RGB, /255 and mean/std folded into one
multiply-add, then the model and the spatial softmax of its map logits. The cast comes first: TensorRT's
ONNX parser takes UINT8 only as a network input or output, never as an intermediate tensor
(:mod:`memgaze.export.trt_compat`), so no layout op may run on the uint8 image.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

import memgaze
from memgaze.train.models import map_size, resized_config, to_heatmap


def model_users(config: dict[str, Any]) -> tuple[str, ...]:
    """The checkpoint's user list (index 0 = the generic viewer)."""
    return tuple(config.get("users") or ["generic"])


def is_personalized(config: dict[str, Any]) -> bool:
    """True when the model knows users beyond the generic one (the graph then takes ``user``)."""
    return len(model_users(config)) > 1


@dataclass(frozen=True)
class GraphSpec:
    """What the exported graph takes and gives, derived once from the checkpoint config (and
    ``--image-size``): the ONNX metadata and the bundle manifest are both written from it."""

    input_size: tuple[int, int]
    map_size: tuple[int, int]
    users: tuple[str, ...]
    personalized: bool  # the graph has the ``user`` input
    normalization: dict[str, Any]

    @classmethod
    def from_config(cls, config: dict[str, Any], image_size: int | None = None) -> GraphSpec:
        """The spec of ``config``'s model at its own input size, or at ``image_size``² (one-line
        error unless it is a positive multiple of 32)."""
        height, width = (image_size, image_size) if image_size is not None else config["input_size"]
        return cls(
            input_size=(int(height), int(width)),
            map_size=map_size((int(height), int(width))),
            users=model_users(config),
            personalized=is_personalized(config),
            normalization=dict(config["normalization"]),
        )

    def model_config(self, config: dict[str, Any]) -> dict[str, Any]:
        """``config`` at this spec's input size (what the model is traced and verified with)."""
        return resized_config(config, self.input_size)

    def metadata(self) -> dict[str, str]:
        """``metadata_props`` written into the model: what a runtime needs without the manifest."""
        height, width = self.input_size
        return {
            "memgaze_version": memgaze.__version__,
            "input_size": f"{height}x{width}",
            "input_layout": "NHWC uint8 BGR",
            "map_size": "x".join(str(v) for v in self.map_size),
            "users": json.dumps(list(self.users)),
            "personalized": str(self.personalized).lower(),
            "normalization": json.dumps(self.normalization),
        }


class ExportGraph(nn.Module):
    """Wraps a student: ``(image uint8 [N,H,W,3] BGR[, user int64 [N]]) -> (score [N], heatmap [N,1,h,w])``."""

    scale: torch.Tensor
    shift: torch.Tensor

    def __init__(self, model: nn.Module, config: dict[str, Any]) -> None:
        super().__init__()
        self.model = model.eval()
        self.personalized = is_personalized(config)
        norm = config["normalization"]
        if str(norm.get("color", "RGB")).upper() != "RGB":
            raise ValueError(f"unsupported model colour order {norm.get('color')!r}; expected RGB")
        mean = torch.tensor(norm["mean"], dtype=torch.float32).view(1, 3, 1, 1)
        std = torch.tensor(norm["std"], dtype=torch.float32).view(1, 3, 1, 1)
        # (x / 255 - mean) / std == x * scale + shift, applied after the BGR->RGB flip.
        self.register_buffer("scale", 1.0 / (255.0 * std))
        self.register_buffer("shift", -mean / std)

    def preprocess(self, image: torch.Tensor) -> torch.Tensor:
        """uint8 NHWC BGR -> normalized float NCHW RGB (cast first: no uint8 tensor inside the graph)."""
        x = image.float().permute(0, 3, 1, 2).flip(1)
        return x * self.scale + self.shift

    def forward(self, image: torch.Tensor, user: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if self.personalized:
            if user is None:
                user = torch.zeros(image.shape[0], dtype=torch.int64, device=image.device)
            score, logits = self.model(self.preprocess(image), user)
        else:
            score, logits = self.model(self.preprocess(image))
        return score.reshape(-1), to_heatmap(logits)
