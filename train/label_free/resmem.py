"""ResMem (Needell & Bainbridge, PyPI ``resmem``): loading, its own preprocessing, and its Grad-CAM.

The package ships its weights inside the wheel, so loading needs no network. Its licence is
NON-COMMERCIAL (University of Chicago); ``pip install 'memgaze[resmem]'`` installs it.
Preprocessing as the package's ``transformer``: RGB, resize to 256×256, centre crop 227, [0, 1].

Its map (:func:`resmem_outputs`) is Grad-CAM of its score at the last stage of its ResNet-152
(``features.layer4``, 8×8 cells over its centre crop), placed in the whole frame: the image regions
whose features raise ResMem's predicted memorability. It is not human gaze.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import warnings
from pathlib import Path
from typing import Any, cast

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from memgaze.errors import fail

RESMEM_RESIZE = 256
RESMEM_SIZE = 227
CROP_START = (RESMEM_RESIZE - RESMEM_SIZE) // 2
FRAME_MAP = 32  # cells per side of ResMem's Grad-CAM once placed in the whole frame
INSTALL_HINT = "pip install 'memgaze[resmem]' (ResMem's licence is non-commercial)"


def resmem_version() -> str:
    """The installed ``resmem`` version; one-line error with the install command when it is missing."""
    if importlib.util.find_spec("resmem") is None:
        fail(f"the ResMem model is not installed: {INSTALL_HINT}")
    return importlib.metadata.version("resmem")


def load_resmem() -> nn.Module:
    """The pretrained ResMem in eval mode (CPU); one-line error if missing or its weights fail to load."""
    resmem_version()
    try:
        from resmem import ResMem

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # torchvision's 'pretrained' deprecation notice
            model = ResMem(pretrained=True)
    except Exception as exc:  # a missing LFS file, a download attempt without internet, an API change
        first = str(exc).splitlines()[0] if str(exc) else ""
        fail(f"resmem is installed but its weights could not be loaded offline ({type(exc).__name__}: {first})")
    return model.eval().requires_grad_(False)


def resmem_trunk_state() -> dict[str, torch.Tensor]:
    """ResMem's ResNet-152 trunk (ImageNet-initialised, memorability-tuned; NON-COMMERCIAL licence) as a
    torchvision ``resnet152`` state dict for ImageNet-normalized input (ResMem feeds it [0, 1] pixels: that
    affine map is folded into conv1/bn1). Read from the weight file inside the installed wheel."""
    resmem_version()
    import resmem

    from memgaze.train.models.blocks import fold_input_affine
    from memgaze.train.normalization import IMAGENET_MEAN, IMAGENET_STD

    path = Path(resmem.__file__).parent / "model.pt"
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - a git-lfs pointer instead of the weights, a truncated file
        fail(f"resmem is installed but its weights {path} could not be read ({type(exc).__name__})")
    trunk = {k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")}
    if "conv1.weight" not in trunk:
        fail(f"{path} holds no ResNet trunk (no features.conv1.weight): an unexpected resmem version")
    fold_input_affine(trunk, "conv1", "bn1", IMAGENET_STD, IMAGENET_MEAN)
    return trunk


def resmem_outputs(model: nn.Module, frames_bgr: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One pass of ResMem on its own input, on the device its weights are on: its scores (float64 ``[N]``), the Grad-CAM of each score at
    ``features.layer4`` placed in the whole frame (float32 ``[N, FRAME_MAP, FRAME_MAP]``: :func:`crop_map_in_frame`),
    and its ResNet-152 trunk's pooled last stage (float32 ``[N, 2048]``). Only the layers after ``layer4`` are
    differentiated, so the map costs little beyond the score."""
    kept: dict[str, torch.Tensor] = {}
    device = next(model.parameters()).device

    def start_graph(module: nn.Module, inputs: Any, output: torch.Tensor) -> torch.Tensor:
        kept["layer4"] = output.detach().requires_grad_(True)
        return kept["layer4"]

    features = cast(nn.Module, model.features)  # ResMem's ResNet-152 trunk
    hooks = [cast(nn.Module, features.layer4).register_forward_hook(start_graph),
             cast(nn.Module, features.avgpool).register_forward_hook(lambda module, inputs, output: kept.update(pooled=output))]
    try:
        with torch.enable_grad():
            scores = model(resmem_input(frames_bgr).to(device)).reshape(-1)
            (grad,) = torch.autograd.grad(scores.sum(), kept["layer4"])
    finally:
        for hook in hooks:
            hook.remove()
    cam = torch.relu((grad.mean(dim=(2, 3), keepdim=True) * kept["layer4"].detach()).sum(dim=1))
    pooled = kept["pooled"].detach().flatten(1)
    return scores.detach().double().cpu().numpy(), crop_map_in_frame(cam).cpu().numpy(), pooled.float().cpu().numpy()


def crop_map_in_frame(cam: torch.Tensor) -> torch.Tensor:
    """Maps ``[N, h, w]`` over ResMem's centre crop (pixels 14–241 of the frame squashed to 256×256) placed in
    the whole frame at ``FRAME_MAP``² cells: bilinear inside the crop, its edge values carried to the frame's
    border (5.5% on each side, which ResMem never sees)."""
    lo, hi = CROP_START / RESMEM_RESIZE, (CROP_START + RESMEM_SIZE) / RESMEM_RESIZE
    centres = (torch.arange(FRAME_MAP, dtype=torch.float32) + 0.5) / FRAME_MAP
    axis = 2 * (centres - lo) / (hi - lo) - 1  # grid_sample's [-1, 1] spans the crop map's outer edges
    grid = torch.stack(torch.meshgrid(axis, axis, indexing="xy"), dim=-1).expand(len(cam), -1, -1, -1).to(cam.device)
    return F.grid_sample(cam[:, None].float(), grid, mode="bilinear", padding_mode="border", align_corners=False)[:, 0]


def resmem_input(frames_bgr: list[np.ndarray]) -> torch.Tensor:
    """BGR uint8 frames of any size → ResMem's input: float RGB ``[N, 3, 227, 227]`` in [0, 1]."""
    start = CROP_START
    crops = []
    for frame in frames_bgr:
        rgb = cv2.cvtColor(cv2.resize(frame, (RESMEM_RESIZE, RESMEM_RESIZE), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
        crops.append(rgb[start : start + RESMEM_SIZE, start : start + RESMEM_SIZE])
    return torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float().div(255.0).contiguous()  # ResMem .view()s its features
