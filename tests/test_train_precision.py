"""The one precision rule of training and of `memgaze-bench train` (a function of the GPU's compute capability,
tested without a GPU), and scores computed in float32 under autocast."""

from __future__ import annotations

import pytest
import torch

from memgaze.train.amp import device_precision, precision_rule
from memgaze.train.models import build_model, default_config


@pytest.mark.parametrize(
    ("capability", "dtype", "scaled"),
    [
        (None, None, False),  # the CPU: fp32
        ((6, 0), torch.float16, True),  # Pascal (P100)
        ((7, 0), torch.float16, True),  # Volta (V100): bf16 only emulated, which torch.cuda.is_bf16_supported() counts
        ((7, 5), torch.float16, True),  # Turing (T4)
        ((8, 0), torch.bfloat16, False),  # Ampere (A100)
        ((8, 6), torch.bfloat16, False),  # Ampere (RTX 30xx, A10)
        ((8, 7), torch.bfloat16, False),  # Jetson Orin
        ((8, 9), torch.bfloat16, False),  # Ada (L4, RTX 40xx)
        ((9, 0), torch.bfloat16, False),  # Hopper (H100, H200)
        ((12, 0), torch.bfloat16, False),  # Blackwell (RTX 50xx)
    ],
)
def test_bf16_only_where_the_gpu_has_it_natively(capability: tuple[int, int] | None, dtype: torch.dtype | None,
                                                 scaled: bool) -> None:
    precision = precision_rule(capability)
    assert precision.dtype == dtype and precision.scaled == scaled
    assert ("GradScaler" in precision.label) == scaled


def test_amp_off_is_fp32_everywhere() -> None:
    assert precision_rule((9, 0), "off").dtype is None and precision_rule((7, 5), "off").dtype is None


def test_the_cpu_trains_in_fp32() -> None:
    assert device_precision(torch.device("cpu")).dtype is None


@pytest.mark.parametrize("kind", ["student", "teacher"])
def test_scores_are_float32_under_bf16_autocast(kind: str) -> None:
    torch.manual_seed(0)
    users = ["alice"] if kind == "student" else None
    arch = {"backbone": "mobilenet_v3_small"} if kind == "student" else {}
    model = build_model(default_config(kind, 64, users, backbone_weights=None, **arch), pretrained=False).eval()
    images = torch.randn(8, 3, 64, 64)
    with torch.no_grad():
        reference, _ = model(images)
        with torch.autocast("cpu", dtype=torch.bfloat16):  # what CUDA training runs under, on the CPU
            score, logits = model(images)
    assert logits.dtype == torch.bfloat16  # the rest of the network did run in bf16
    assert score.dtype == torch.float32
    assert not torch.equal(score.to(torch.bfloat16).float(), score)  # finer than bf16's steps (0.004 near 0.5-1)
    torch.testing.assert_close(score, reference, rtol=0, atol=0.02)
