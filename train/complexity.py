"""Model complexity: parameter count and multiply-accumulates of one forward pass."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_params(model: nn.Module) -> int:
    """Number of parameters (trainable or not)."""
    return sum(p.numel() for p in model.parameters())


def _size(image_size: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    if isinstance(image_size, int):
        return image_size, image_size
    height, width = image_size
    return int(height), int(width)


def count_macs(model: nn.Module, image_size: int | tuple[int, int] | list[int]) -> int:
    """Multiply-accumulates of one eval-mode forward pass on a ``[1, 3, H, W]`` input.

    Counted by ``torch.utils.flop_counter.FlopCounterMode`` (convolutions and matrix products),
    MACs = FLOPs / 2.
    """
    height, width = _size(image_size)
    param = next(model.parameters())
    image = torch.zeros(1, 3, height, width, device=param.device, dtype=param.dtype)
    was_training = model.training
    model.eval()
    try:
        counter = FlopCounterMode(display=False)
        with counter:
            model(image)
    finally:
        model.train(was_training)
    return counter.get_total_flops() // 2
