"""Test-split metrics of a trained model: what each stage writes to metrics.json, and what
``memgaze-bench lamem`` reports per split for checkpoints trained here or elsewhere (one code path,
so the two agree by construction)."""

from __future__ import annotations

from typing import Any, Callable

from torch import nn

from memgaze.train.data.dataset import MemorabilityDataset
from memgaze.train.evaluate import evaluate_maps, evaluate_scores
from memgaze.train.stages.context import StageContext


def teacher_metrics(ctx: StageContext, model: nn.Module) -> dict[str, float]:
    """Spearman ρ, Pearson r and MSE on the test split of ``ctx.fold``."""
    return evaluate_scores(model, ctx.dataset("test", "image"), ctx.compute, ctx.batch_size)


def student_metrics(ctx: StageContext, model: nn.Module, users: list[str]) -> dict[str, Any]:
    """The teacher's metrics (generic viewer) plus per-user map CC and NSS (``evaluate.evaluate_maps``);
    ``users`` is the model's user list (``generic`` first). Map metrics are NaN without gaze data."""
    maps = ctx.dataset("test", "user", users[1:])
    test = teacher_metrics(ctx, model)
    test.update(evaluate_maps(model, maps, ctx.compute, ctx.batch_size, users, fixation_lookup(users, maps)))
    return test


def fixation_lookup(users: list[str], dataset: MemorabilityDataset) -> Callable[[int, int], Any]:
    """``(user index, image index) -> bool [h, w] | None``: the binary fixation map for NSS."""
    return lambda user, index: dataset.gaze.fixations(users[user], dataset.images[index].name)
