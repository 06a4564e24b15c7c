"""Train-time augmentation: flip and scale-crop applied identically to image and heatmap
(torchvision.transforms.v2 on a pair of tv_tensors), colour jitter on the image only; its
settings are the ``augment`` section of the training config."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchvision import tv_tensors
from torchvision.transforms import v2

from memgaze.train.config import AugmentConfig


class JointAugment:
    """``(image uint8 [3,S,S], heatmap float [1,h,w]) -> same shapes``, randomly transformed.

    The heatmap is upsampled to S×S so v2 draws one set of parameters for both tensors
    (bilinear for both), then area-downsampled back to h×w; its sum is not renormalised here.
    """

    def __init__(self, image_size: int, settings: AugmentConfig | None = None) -> None:
        settings = settings or AugmentConfig()
        steps: list[v2.Transform] = [v2.RandomHorizontalFlip(settings.flip)]
        if settings.min_scale < 1.0:  # images arrive at image_size already: scale 1 is no crop at all
            steps.append(v2.RandomResizedCrop(image_size, scale=(settings.min_scale, 1.0), antialias=True))
        self.geometric = v2.Compose(steps)
        jitter = settings.jitter
        self.color = v2.ColorJitter(brightness=jitter, contrast=jitter, saturation=jitter)

    def __call__(self, image: torch.Tensor, heatmap: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        map_hw = heatmap.shape[-2:]
        big = F.interpolate(heatmap[None], size=image.shape[-2:], mode="bilinear", align_corners=False)[0]
        image, big = self.geometric(tv_tensors.Image(image), tv_tensors.Image(big))
        small = F.interpolate(big.as_subclass(torch.Tensor)[None], size=map_hw, mode="area")[0]
        return self.color(image).as_subclass(torch.Tensor), small.clamp_min(0)
