"""Losses: values, masks, NaN safety, KD fixed point and a decreasing toy optimisation."""

from __future__ import annotations

import math

import pytest
import torch

from memgaze.train.losses import (
    LossWeights,
    correlation,
    map_distill,
    map_loss,
    rank_agreement_loss,
    score_loss,
    student_loss,
    teacher_loss,
)
from memgaze.train.models import to_heatmap


def maps(n: int, seed: int, scale: float = 2.0) -> torch.Tensor:
    return torch.randn(n, 1, 6, 6, generator=torch.Generator().manual_seed(seed)) * scale


def batch(n: int = 4) -> dict[str, torch.Tensor]:
    heat = to_heatmap(maps(n, 1))
    heat[1] = 0.0  # no gaze for item 1: an all-zero map, masked out
    return {
        "score": torch.linspace(0.1, 0.9, n),
        "heatmap": heat,
        "has_heatmap": torch.tensor([True, False, True, True][:n]),
        "user": torch.tensor([0, 1, 0, 2][:n]),
    }


def test_map_loss_minimum_at_the_target() -> None:
    target = to_heatmap(maps(3, 0))
    has = torch.ones(3, dtype=torch.bool)
    at_target = map_loss(target.log(), target, has)
    assert at_target.item() == pytest.approx(0.0, abs=1e-5)
    assert map_loss(maps(3, 9), target, has).item() > 0.1


def test_correlation_matches_numpy_and_handles_constants() -> None:
    a, b = maps(2, 3), maps(2, 4)
    expected = [float(torch.corrcoef(torch.stack([a[i].flatten(), b[i].flatten()]))[0, 1]) for i in range(2)]
    torch.testing.assert_close(correlation(a, b), torch.tensor(expected), atol=1e-5, rtol=0)
    assert correlation(a, torch.zeros_like(b)).abs().max().item() == 0.0


def test_masked_all_zero_maps_are_nan_safe() -> None:
    logits = maps(4, 5).requires_grad_(True)
    b = batch()
    loss = map_loss(logits, b["heatmap"], b["has_heatmap"])
    loss.backward()
    assert math.isfinite(loss.item()) and torch.isfinite(logits.grad).all()
    assert logits.grad[1].abs().max().item() == 0.0  # the masked item gets no gradient
    empty = map_loss(logits, b["heatmap"], torch.zeros(4, dtype=torch.bool))
    assert empty.item() == 0.0 and empty.requires_grad


def test_kd_is_zero_when_student_equals_teacher_and_scales_with_t() -> None:
    teacher = maps(3, 6)
    assert map_distill(teacher.clone(), teacher, 2.0).item() == pytest.approx(0.0, abs=1e-6)
    assert map_distill(teacher + 5.0, teacher, 4.0).item() == pytest.approx(0.0, abs=1e-5)  # shift-invariant
    other = maps(3, 7)
    assert map_distill(other, teacher, 2.0).item() > 0.0
    mask = torch.tensor([True, False, False])
    masked = map_distill(torch.cat([teacher[:1], other[1:]]), teacher, 2.0, mask)
    assert masked.item() == pytest.approx(0.0, abs=1e-6)


def test_score_loss_is_mse() -> None:
    assert score_loss(torch.tensor([0.5, 1.0]), torch.tensor([0.0, 1.0])).item() == pytest.approx(0.125)


def test_teacher_and_student_losses_parts_and_weights() -> None:
    b = batch()
    score, logits = torch.full((4,), 0.5), maps(4, 8)
    total, parts = teacher_loss(score, logits, b, LossWeights(teacher_score=3.0, teacher_map=1.0))
    assert set(parts) == {"score", "map"} and not any(v.requires_grad for v in parts.values())  # logged, not trained
    assert total.item() == pytest.approx(3.0 * parts["score"].item() + parts["map"].item(), rel=1e-5)
    weights = LossWeights(student_map_kd=0.0, student_gaze=2.0)
    total, parts = student_loss(score, logits, score, logits, b, weights)
    assert set(parts) == {"score", "score_kd", "map_kd", "gaze"}
    assert parts["score_kd"].item() == 0.0 and parts["map_kd"].item() == pytest.approx(0.0, abs=1e-6)
    assert total.item() == pytest.approx(parts["score"].item() + 2.0 * parts["gaze"].item(), rel=1e-5)


def test_rank_agreement_loss_reads_the_order_not_the_values() -> None:
    target = torch.tensor([0.62, 0.71, 0.70, 0.93, 0.80])
    assert rank_agreement_loss(0.3 * target + 5.0, target).item() == pytest.approx(0.0, abs=1e-5)
    assert rank_agreement_loss(-target, target).item() == pytest.approx(2.0, abs=1e-5)
    assert rank_agreement_loss(torch.rand(5), torch.full((5,), 0.7)).item() == pytest.approx(1.0)
    swapped = target[[0, 2, 1, 3, 4]]  # one close pair out of order
    assert 0.0 < rank_agreement_loss(swapped, target).item() < 0.1


def test_student_rank_term_is_added_only_with_its_weight() -> None:
    b = batch()
    score, logits = torch.tensor([0.9, 0.2, 0.4, 0.1]), maps(4, 8)
    plain, plain_parts = student_loss(score, logits, score, logits, b)
    assert "score_rank" not in plain_parts
    total, parts = student_loss(score, logits, score, logits, b, LossWeights(student_score_rank=0.5))
    assert parts["score_rank"] > 1.0  # the scores run against the batch's targets
    assert total.item() == pytest.approx(plain.item() + 0.5 * parts["score_rank"].item(), rel=1e-5)


def test_student_loss_decreases_on_a_toy_problem() -> None:
    torch.manual_seed(0)
    b = batch()
    teacher_score, teacher_logits = torch.rand(4), maps(4, 11)
    score_param = torch.zeros(4, requires_grad=True)
    logits = torch.zeros(4, 1, 6, 6, requires_grad=True)
    optimizer = torch.optim.Adam([score_param, logits], lr=0.1)
    history = []
    for _ in range(30):
        total, _ = student_loss(torch.sigmoid(score_param), logits, teacher_score, teacher_logits, b)
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        history.append(total.item())
    assert all(math.isfinite(v) for v in history)
    assert history[-1] < history[15] < history[0] and history[-1] < 0.75 * history[0]
