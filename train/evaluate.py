"""Validation and test metrics of a model: score Spearman / Pearson / MSE and per-user map CC / NSS.

Every function shards its dataset over the ``torchrun`` processes and gathers the per-sample
results by dataset index, so all processes return the same numbers.
"""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from memgaze.correlation import pearson_rows
from memgaze.train import metrics
from memgaze.train.distributed import all_gather_objects
from memgaze.train.loop import Batch, Compute, make_loader
from memgaze.train.models import to_heatmap


def _batches(dataset: Dataset[Any], compute: Compute, batch_size: int) -> Iterator[Batch]:
    for batch in make_loader(dataset, batch_size, compute, train=False):
        yield compute.to_device(batch)


def _gather_rows(compute: Compute, rows: dict[Any, Any]) -> list[Any]:
    """Per-sample rows of every process, deduplicated by key (image index [, user]), in key order."""
    merged: dict[Any, Any] = {}
    for part in all_gather_objects(compute.ctx, rows):
        merged.update(part)
    return [merged[i] for i in sorted(merged)]


def _forward(model: nn.Module, compute: Compute, image: torch.Tensor, user: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Score ``[N]`` and heatmap ``[N,1,h,w]`` (sums to 1) in float32."""
    with compute.autocast():
        score, logits = model(image, user)
    return score.float(), to_heatmap(logits.float())


@torch.no_grad()
def predict_scores(model: nn.Module, dataset: Dataset[Any], compute: Compute, batch_size: int) -> np.ndarray:
    """Predicted (generic viewer, user 0) and true scores of a ``mode="image"`` dataset: float64
    ``[n, 2]``, row = image index."""
    was_training = model.training
    model.eval()
    rows: dict[int, tuple[float, float]] = {}
    for batch in _batches(dataset, compute, batch_size):
        score, _ = _forward(model, compute, batch["image"], torch.zeros_like(batch["user"]))
        for i, p, t in zip(batch["index"].tolist(), score.tolist(), batch["score"].tolist()):
            rows[i] = (p, t)
    model.train(was_training)
    return np.asarray(_gather_rows(compute, rows), dtype=np.float64).reshape(-1, 2)


def score_metrics(model: nn.Module, dataset: Dataset[Any], compute: Compute, batch_size: int) -> dict[str, float]:
    """Spearman ρ, Pearson r and MSE of the predicted scores (generic viewer, user 0)."""
    pairs = predict_scores(model, dataset, compute, batch_size)
    return {k: float(v) for k, v in metrics.score_metrics(pairs[:, 0], pairs[:, 1]).items()}


@torch.no_grad()
def map_metrics(
    model: nn.Module,
    dataset: Dataset[Any],
    compute: Compute,
    batch_size: int,
    users: list[str],
    fixations: Any | None = None,
) -> dict[str, Any]:
    """Map CC of a user-conditioned student on the heatmaps of a ``mode="user"`` dataset.

    ``cc_own_user``: conditioned on the heatmap's own user; ``cc_other_user``: on each other
    known user (averaged); ``cc_generic``: on index 0; ``cc_by_user``: own-user CC per user;
    ``nss_own_user``: NSS against the binary fixation maps of ``fixations(user, index)`` (a
    callable returning a bool ``[h, w]`` array or None) when given; ``cc_generic_target``: the
    generic viewer's map against the generic items' own targets (a reference model's map, or the
    mean of the users' maps), NaN when they have none.
    """
    was_training = model.training
    model.eval()
    real = list(range(1, len(users)))
    rows: dict[tuple[int, int], tuple[int, float, float, float, float]] = {}
    generic_rows: dict[int, float] = {}
    for batch in _batches(dataset, compute, batch_size):
        has_map = batch["has_heatmap"].bool()
        generic_items = has_map & (batch["user"] == 0)
        if generic_items.any():
            predicted = _forward(model, compute, batch["image"][generic_items], batch["user"][generic_items])[1]
            generic_rows.update(zip(batch["index"][generic_items].tolist(), cc_rows(predicted, batch["heatmap"][generic_items])))
        keep = has_map & (batch["user"] > 0)
        if not keep.any():
            continue
        image, user, target = batch["image"][keep], batch["user"][keep], batch["heatmap"][keep]
        index = batch["index"][keep].tolist()
        own_map = _forward(model, compute, image, user)[1]
        own = cc_rows(own_map, target)
        generic = cc_rows(_forward(model, compute, image, torch.zeros_like(user))[1], target)
        other_sum = np.zeros_like(own)
        user_np = user.cpu().numpy()
        for k in real:
            cc_k = cc_rows(_forward(model, compute, image, torch.full_like(user, k))[1], target)
            other_sum += np.where(user_np == k, 0.0, cc_k)
        other = other_sum / max(1, len(real) - 1)
        for j, (i, u) in enumerate(zip(index, user.tolist())):
            nss = float("nan")
            if fixations is not None:
                fix = fixations(u, i)
                if fix is not None and fix.any():
                    nss = float(metrics.nss(own_map[j, 0].cpu().numpy(), fix))
            rows[(i, u)] = (u, float(own[j]), float(other[j]), float(generic[j]), nss)
    model.train(was_training)
    table = np.asarray(_gather_rows(compute, rows), dtype=np.float64).reshape(-1, 5)
    by_user = {users[k]: _mean(table[table[:, 0] == k, 1]) for k in real}
    return {
        "cc_own_user": _mean(table[:, 1]),
        "cc_other_user": _mean(table[:, 2]) if len(real) > 1 else float("nan"),
        "cc_generic": _mean(table[:, 3]),
        "nss_own_user": _mean(table[:, 4]),
        "cc_generic_target": _mean(np.asarray(_gather_rows(compute, generic_rows), dtype=np.float64)),
        "cc_by_user": by_user,
    }


def cc_rows(pred: torch.Tensor, target: torch.Tensor) -> np.ndarray:
    """CC of each pair of maps ``[N,1,h,w]`` (float64 ``[N]``)."""
    return pearson_rows(pred.float().cpu().numpy(), target.float().cpu().numpy())


def _mean(values: np.ndarray) -> float:
    values = values[np.isfinite(values)]
    return float(values.mean()) if len(values) else float("nan")
