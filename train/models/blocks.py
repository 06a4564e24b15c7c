"""Building blocks shared by the teacher and the student.

Every op here exports to ONNX opset 17 with static shapes and builds in TensorRT: Conv, BN,
ReLU, Sigmoid, ReduceMean/Max/Sum, Exp, Resize (bilinear, scale 2, align_corners=False),
Add, Mul, Concat, Gemm.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
import torch.nn.functional as F
from torch import nn

from memgaze.console import console
from memgaze.errors import fail

STRIDE = 8  # map resolution = input / STRIDE
ALIGN = 32  # input sides must be multiples of the coarsest feature stride


def warn(message: str) -> None:
    """One yellow ``warning:`` line on the shared console."""
    console.print(f"[yellow]warning:[/yellow] {message}", markup=True, soft_wrap=True)


def spatial_softmax(logits: torch.Tensor) -> torch.Tensor:
    """Softmax over the two spatial dims of ``[N, C, h, w]`` (each map sums to 1), reshape-free."""
    shifted = logits - logits.amax(dim=(2, 3), keepdim=True)
    weights = shifted.exp()
    return weights / weights.sum(dim=(2, 3), keepdim=True)


def spatial_log_softmax(logits: torch.Tensor) -> torch.Tensor:
    """Log of :func:`spatial_softmax`, computed stably."""
    return logits - torch.logsumexp(logits, dim=(2, 3), keepdim=True)


def upsample2x(x: torch.Tensor) -> torch.Tensor:
    """Bilinear ×2 upsampling with a static scale factor (ONNX Resize, TensorRT-friendly)."""
    return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)


class ConvBNAct(nn.Sequential):
    """Conv (no bias) + BatchNorm (folded at export) + activation."""

    def __init__(self, cin: int, cout: int, kernel: int = 3, act: type[nn.Module] = nn.ReLU) -> None:
        super().__init__(nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False), nn.BatchNorm2d(cout), act())


class ChannelAttention(nn.Module):
    """CBAM channel attention: a shared bottleneck MLP over mean- and max-pooled features."""

    def __init__(self, channels: int, reduction: int = 8) -> None:
        super().__init__()
        hidden = max(8, channels // reduction)
        self.mlp = nn.Sequential(nn.Conv2d(channels, hidden, 1), nn.ReLU(), nn.Conv2d(hidden, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        avg = self.mlp(x.mean(dim=(2, 3), keepdim=True))
        peak = self.mlp(x.amax(dim=(2, 3), keepdim=True))
        return x * torch.sigmoid(avg + peak)


class SpatialAttention(nn.Module):
    """CBAM spatial attention: a k×k conv over the channel mean and max maps."""

    def __init__(self, kernel: int = 7) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel, padding=kernel // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.conv(pooled))


class AttentionFuse(nn.Module):
    """One decoder stage: lateral 1×1 projection (+ upsampled coarser stage) → CBAM → 3×3 conv."""

    def __init__(self, cin: int, width: int) -> None:
        super().__init__()
        self.lateral = ConvBNAct(cin, width, kernel=1)
        self.channel = ChannelAttention(width)
        self.spatial = SpatialAttention()
        self.refine = ConvBNAct(width, width, kernel=3)

    def forward(self, feature: torch.Tensor, coarser: torch.Tensor | None = None) -> torch.Tensor:
        x = self.lateral(feature)
        if coarser is not None:
            x = x + upsample2x(coarser)
        return self.refine(self.spatial(self.channel(x)))


class MapHead(nn.Sequential):
    """Map logits ``[N, 1, h, w]`` from decoder features."""

    def __init__(self, width: int) -> None:
        super().__init__(ConvBNAct(width, width // 2, kernel=3), nn.Conv2d(width // 2, 1, 1))


class ScoreHead(nn.Module):
    """Score in [0, 1] from features pooled by the predicted map (spatial softmax) + global pooling.

    ``map_grad`` (training only, not saved) scales the gradient the score sends back into the map through
    that pooling: 1 lets the score shape the map, 0 leaves the map to its own loss terms. The outputs are
    the same either way.

    Under autocast the head runs in float32: in bf16 the score would step by about 0.004 between 0.5 and 1,
    tying the scores that validation ranks, the distillation targets and the exported float32 model compare.
    """

    def __init__(self, map_channels: int, global_channels: int, hidden: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(map_channels + global_channels, hidden), nn.ReLU(), nn.Dropout(0.1), nn.Linear(hidden, 1)
        )
        self.map_grad = 1.0

    def forward(self, features: torch.Tensor, map_logits: torch.Tensor, deep: torch.Tensor) -> torch.Tensor:
        device = features.device.type
        if torch.is_autocast_enabled(device):
            with torch.autocast(device, enabled=False):
                return self._score(features.float(), map_logits.float(), deep.float())
        return self._score(features, map_logits, deep)

    def _score(self, features: torch.Tensor, map_logits: torch.Tensor, deep: torch.Tensor) -> torch.Tensor:
        if self.map_grad != 1.0:
            fixed = map_logits.detach()
            map_logits = fixed + self.map_grad * (map_logits - fixed)
        weighted = (features * spatial_softmax(map_logits)).sum(dim=(2, 3))
        pooled = torch.cat([weighted, deep.mean(dim=(2, 3))], dim=1)
        return torch.sigmoid(self.mlp(pooled)).squeeze(1)


def check_input_size(height: int, width: int) -> None:
    """One-line error unless ``height``×``width`` is a positive multiple of the coarsest stride."""
    if height % ALIGN or width % ALIGN or height <= 0 or width <= 0:
        fail(f"image size {height}x{width} must be a positive multiple of {ALIGN} on both sides")


def map_size(input_size: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    """The heatmap ``(h, w)`` the models produce for an input ``(H, W)`` (or a square side): the one
    place where the map resolution is derived."""
    height, width = (input_size, input_size) if isinstance(input_size, int) else input_size
    check_input_size(int(height), int(width))
    return int(height) // STRIDE, int(width) // STRIDE


def check_input(image: torch.Tensor) -> None:
    """One-line error for an input tensor whose sides are not multiples of ``ALIGN`` (eager mode;
    the export checks the size before tracing)."""
    if not torch.jit.is_tracing():
        check_input_size(int(image.shape[-2]), int(image.shape[-1]))


def load_pretrained(model: nn.Module, weights: object, spec: str | None, what: str) -> bool:
    """Initialise ``model`` (a torchvision network, classifier replaced by Identity) per ``spec``.

    ``"imagenet"``: torchvision ``weights`` if already in the torch hub cache (never downloads),
    else random init with one warning; ``"none"``/None: random init with a warning; anything
    else: a local state-dict path (``.pth`` via ``torch.load(weights_only=True)`` or
    ``.safetensors``), one-line error if unreadable or not matching. None: leave as is, silently
    (the weights come from a memgaze checkpoint). Returns whether pretrained weights were loaded.
    """
    if spec is None:
        return False
    if spec == "none":
        warn(f"{what}: random initialisation (no pretrained weights requested)")
        return False
    if spec == "imagenet":
        file = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(weights.url).path)  # type: ignore[attr-defined]
        if not file.is_file():
            warn(f"{what}: ImageNet weights not in the torch hub cache ({file}); random initialisation")
            return False
        try:
            state = weights.get_state_dict(progress=False, check_hash=False)  # type: ignore[attr-defined]
        except Exception as exc:  # noqa: BLE001 - a corrupt cache file must not stop training
            warn(f"{what}: cannot read cached ImageNet weights {file} ({type(exc).__name__}); random initialisation")
            return False
        apply_state(model, state, str(file), what)
        return True
    _load_state_file(model, Path(spec), what)
    return True


def _load_state_file(model: nn.Module, path: Path, what: str) -> None:
    if not path.is_file():
        fail(f"{what} weights {path} do not exist")
    state: Any
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the user's to fix
        fail(f"{what} weights {path} are unreadable ({type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''})")
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        fail(f"{what} weights {path} hold no state dict")
    apply_state(model, {k.removeprefix("module."): v for k, v in state.items()}, str(path), what)


def fold_input_affine(
    state: dict[str, torch.Tensor], conv: str, norm: str, scale: tuple[float, ...], shift: tuple[float, ...]
) -> None:
    """Make a bias-free first conv ``conv`` followed by BatchNorm ``norm`` accept ImageNet-normalized input
    when its weights expect ``scale · x + shift`` of it (per input channel): the kernel is scaled, the
    constant goes into BN's running mean. Exact except at the zero-padded border. Edits ``state`` in place."""
    weight = state[f"{conv}.weight"]
    a = torch.tensor(scale, dtype=weight.dtype)[None, :, None, None]
    b = torch.tensor(shift, dtype=weight.dtype)[None, :, None, None]
    state[f"{norm}.running_mean"] = state[f"{norm}.running_mean"] - (weight * b).sum(dim=(1, 2, 3))
    state[f"{conv}.weight"] = weight * a


def apply_state(model: nn.Module, state: dict[str, torch.Tensor], source: str, what: str) -> None:
    """Load the keys ``model`` has from ``state`` (extra keys, e.g. a classifier, are ignored)."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    wrong = [k for k in own if k in state and tuple(getattr(state[k], "shape", ())) != tuple(own[k].shape)]
    if missing or wrong:
        example = (missing or wrong)[0]
        fail(f"{what} weights {source} do not match: {len(missing)} missing and {len(wrong)} mis-shaped keys (e.g. {example})")
    model.load_state_dict({k: state[k] for k in own})
