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
from memgaze import metrics
from memgaze.train.distributed import all_gather_objects
from memgaze.train.compute import Batch, Compute, make_loader
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


def evaluate_scores(model: nn.Module, dataset: Dataset[Any], compute: Compute, batch_size: int) -> dict[str, float]:
    """Spearman ρ, Pearson r and MSE of the predicted scores (generic viewer, user 0)."""
    pairs = predict_scores(model, dataset, compute, batch_size)
    return {k: float(v) for k, v in metrics.score_metrics(pairs[:, 0], pairs[:, 1]).items()}


@torch.no_grad()
def evaluate_maps(
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

    Each image is run once per viewer (:class:`ViewerMaps`), however many of its items hold a map, so the
    dataset must not augment: every item of an image shows the same pixels.
    """
    was_training = model.training
    model.eval()
    real = list(range(1, len(users)))
    viewer_maps = ViewerMaps(model, compute, len(users), batch_size)
    rows: dict[tuple[int, int], tuple[int, float, float, float, float]] = {}
    generic_rows: dict[int, float] = {}
    for batch in _batches(dataset, compute, batch_size):
        keep = batch["has_heatmap"].bool()
        if not keep.any():
            continue
        index, user, target = batch["index"][keep].tolist(), batch["user"][keep].tolist(), batch["heatmap"][keep]
        predicted = viewer_maps.of(batch["image"][keep], index)  # [N, viewers, 1, h, w]
        cc = np.stack([cc_rows(predicted[:, k], target) for k in range(len(users))], axis=1)  # [N, viewers]
        for j, (i, u) in enumerate(zip(index, user)):
            if u == 0:
                generic_rows[i] = float(cc[j, 0])
                continue
            nss = float("nan")
            if fixations is not None:
                fix = fixations(u, i)
                if fix is not None and fix.any():
                    nss = float(metrics.nss(predicted[j, u, 0].cpu().numpy(), fix))
            other = float(np.mean([cc[j, k] for k in real if k != u])) if len(real) > 1 else float("nan")
            rows[(i, u)] = (u, float(cc[j, u]), other, float(cc[j, 0]), nss)
        viewer_maps.forget_before(max(index))
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


class ViewerMaps:
    """A student's maps of each image for every viewer (0 = generic, then the users), computed once per image
    and kept while items of that image keep coming (a ``mode="user"`` dataset lists them together)."""

    def __init__(self, model: nn.Module, compute: Compute, viewers: int, batch_size: int) -> None:
        self.model, self.compute, self.viewers, self.batch_size = model, compute, viewers, batch_size
        self.maps: dict[int, torch.Tensor] = {}

    def of(self, images: torch.Tensor, index: list[int]) -> torch.Tensor:
        """``[N, viewers, 1, h, w]`` heatmaps of the images with dataset indices ``index``."""
        new = [j for j, i in enumerate(index) if i not in self.maps and index.index(i) == j]
        if new:
            pairs = [(j, k) for j in new for k in range(self.viewers)]
            chunks = []
            for start in range(0, len(pairs), self.batch_size):
                image, viewer = zip(*pairs[start : start + self.batch_size])
                chunks.append(_forward(self.model, self.compute, images[list(image)], torch.tensor(viewer, device=images.device))[1])
            maps = torch.cat(chunks).unflatten(0, (len(new), self.viewers))
            self.maps.update((index[j], m) for j, m in zip(new, maps))
        return torch.stack([self.maps[i] for i in index])

    def forget_before(self, index: int) -> None:
        """Drop the maps of images before ``index``: the loader has passed them."""
        self.maps = {i: m for i, m in self.maps.items() if i >= index}


def cc_rows(pred: torch.Tensor, target: torch.Tensor) -> np.ndarray:
    """CC of each pair of maps ``[N,1,h,w]`` (float64 ``[N]``)."""
    return pearson_rows(pred.float().cpu().numpy(), target.float().cpu().numpy())


def _mean(values: np.ndarray) -> float:
    values = values[np.isfinite(values)]
    return float(values.mean()) if len(values) else float("nan")
