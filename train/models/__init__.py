"""Models: the ResNet-50 attention teacher, the user-conditioned student, and their configs."""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import nn

import memgaze
from memgaze.errors import fail
from memgaze.train.complexity import count_macs, count_params
from memgaze.train.models.backbones import BACKBONES, LEGACY_BACKBONE
from memgaze.train.models.blocks import check_input_size, map_size, spatial_softmax
from memgaze.train.models.student import STUDENT_NAME, Student
from memgaze.train.models.teacher import TEACHER_NAME, Teacher
from memgaze.train.normalization import IMAGENET_MEAN, IMAGENET_STD

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "CHECKPOINT_VERSION",
    "KINDS",
    "Student",
    "Teacher",
    "build_model",
    "count_macs",
    "count_params",
    "check_input_size",
    "default_config",
    "map_size",
    "to_heatmap",
]

CHECKPOINT_VERSION = 1
KINDS: dict[str, tuple[str, type[nn.Module]]] = {"teacher": (TEACHER_NAME, Teacher), "student": (STUDENT_NAME, Student)}
# The names earlier checkpoints carry (from when each kind had one trunk), read as the names above.
FORMER_NAMES = {"teacher": "resnet50_attention_fpn", "student": "mobilenetv3s_attention_film"}


def to_heatmap(map_logits: torch.Tensor) -> torch.Tensor:
    """Spatial softmax of map logits ``[N, 1, h, w]``: non-negative, each map sums to 1."""
    return spatial_softmax(map_logits)


def resized_config(config: dict[str, Any], input_size: tuple[int, int]) -> dict[str, Any]:
    """A copy of a checkpoint config for another input size, with its map size derived again."""
    return {**config, "input_size": list(input_size), "map_size": list(map_size(input_size))}


def default_config(
    kind: str, image_size: int | tuple[int, int] = 224, users: list[str] | None = None, **arch: Any
) -> dict[str, Any]:
    """A complete checkpoint config for a fresh ``kind`` model (``teacher`` | ``student``).

    ``users`` is the model's user list (index 0 = ``"generic"``, added when missing; teachers
    always have only the generic viewer); ``arch`` overrides architecture hyper-parameters,
    e.g. ``backbone_weights="none"`` or ``width=96``.
    """
    if kind not in KINDS:
        fail(f"unknown model kind {kind!r} (expected one of: {', '.join(KINDS)})")
    height, width = (image_size, image_size) if isinstance(image_size, int) else image_size
    names = list(users or [])
    names = names if names[:1] == ["generic"] else ["generic", *names]
    name, cls = KINDS[kind]
    params = inspect.signature(cls).parameters
    architecture = {"name": name, **{k: p.default for k, p in params.items() if k != "num_users"}, **arch}
    config = {
        "memgaze_checkpoint": CHECKPOINT_VERSION,
        "kind": kind,
        "architecture": architecture,
        "input_size": [height, width],
        "map_size": list(map_size((height, width))),
        "normalization": {"color": "RGB", "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)},
        "users": names if kind == "student" else ["generic"],
        "metrics": {},
        "code_version": memgaze.__version__,
        "training": {},
    }
    _architecture_kwargs(config)  # reject unknown hyper-parameters now, not at build time
    return config


def _architecture_kwargs(config: dict[str, Any]) -> dict[str, Any]:
    kind = config.get("kind")
    if kind not in KINDS:
        fail(f"unknown model kind {kind!r} (expected one of: {', '.join(KINDS)})")
    name, cls = KINDS[kind]
    arch = dict(config.get("architecture") or {})
    if arch.pop("name", None) not in (name, FORMER_NAMES[kind]):
        fail(f"unknown {kind} architecture {config.get('architecture', {}).get('name')!r} (this memgaze builds {name!r})")
    if kind == "student":
        arch.setdefault("backbone", LEGACY_BACKBONE)
        if arch["backbone"] not in BACKBONES:
            fail(f"unknown student backbone {arch['backbone']!r} (expected one of: {', '.join(BACKBONES)})")
        arch["num_users"] = len(config.get("users") or ["generic"])
    try:
        inspect.signature(cls).bind(**arch)
    except TypeError as exc:
        fail(f"{kind} architecture has unknown or missing hyper-parameters: {exc}")
    return arch


def build_model(config: dict[str, Any], pretrained: bool = True) -> nn.Module:
    """Build the model a checkpoint config describes.

    ``pretrained=False`` skips backbone initialisation (and its warnings): use it when the
    weights are loaded from a memgaze checkpoint right after.
    """
    kwargs = _architecture_kwargs(config)
    if not pretrained:
        kwargs["backbone_weights"] = None
    return KINDS[config["kind"]][1](**kwargs)
