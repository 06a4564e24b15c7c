"""The one precision rule of training and of ``memgaze-bench train`` (automatic mixed precision).

- CUDA GPUs that compute bf16 natively (compute capability 8.0 and up: Ampere, Ada, Hopper, Blackwell) train under
  bf16 autocast: what ``torch.cuda.is_bf16_supported(including_emulation=False)`` answers on a CUDA build.
- Older GPUs (Volta, Turing: V100, T4) train under fp16 autocast with a gradient scaler. PyTorch 2.14's
  ``torch.cuda.is_bf16_supported()`` says yes there too (its default counts emulated bf16), which is why this rule
  reads the capability instead.
- The CPU, and ``amp: off``, train in fp32.

:func:`precision_rule` is a pure function of the GPU's capability (tested without a GPU); :func:`device_precision`
reads the capability of a device.
"""

from __future__ import annotations

import dataclasses

import torch

NATIVE_BF16 = (8, 0)  # the first compute capability with bf16 tensor cores (Ampere)


@dataclasses.dataclass(frozen=True)
class Precision:
    """The autocast dtype of training (None: fp32) and whether its gradients need a scaler (fp16)."""

    dtype: torch.dtype | None

    @property
    def scaled(self) -> bool:
        """fp16 gradients underflow without loss scaling: a ``GradScaler`` goes with fp16 autocast."""
        return self.dtype == torch.float16

    @property
    def label(self) -> str:
        """How it is named in logs and benchmark reports."""
        if self.dtype is None:
            return "fp32"
        return "fp16 autocast + GradScaler" if self.scaled else "bf16 autocast"


def precision_rule(capability: tuple[int, int] | None, amp: str = "auto") -> Precision:
    """The precision for a CUDA GPU of compute ``capability`` (``None``: the CPU); ``amp="off"`` is fp32 everywhere."""
    if capability is None or amp == "off":
        return Precision(None)
    return Precision(torch.bfloat16 if tuple(capability) >= NATIVE_BF16 else torch.float16)


def device_precision(device: torch.device, amp: str = "auto") -> Precision:
    """:func:`precision_rule` for ``device`` (its compute capability when it is a CUDA GPU)."""
    capability = torch.cuda.get_device_capability(device) if device.type == "cuda" else None
    return precision_rule(capability, amp)
