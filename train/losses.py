"""Training losses: score regression, gaze-map imitation (KL + CC) and teacher→student distillation.

Maps are compared as spatial distributions: logits go through the spatial (log-)softmax of
:mod:`memgaze.train.models.blocks`, ground-truth heatmaps sum to 1. Per-sample masks
(``has_heatmap``) select which items contribute; an empty mask gives a zero loss that still
belongs to the graph, and masked-out (e.g. all-zero) maps never produce NaN.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from memgaze.train.config import LossWeights
from memgaze.train.models.blocks import spatial_log_softmax

EPS = 1e-12


def score_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error of scores ``[N]``."""
    return F.mse_loss(pred.reshape(-1), target.reshape(-1).to(pred.dtype))


def rank_agreement_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 − Pearson correlation of a batch's scores ``[N]`` with their targets: what orders the batch, not
    the values (0 when the orders agree linearly, 2 when reversed, 1 without a spread to correlate)."""
    return 1.0 - correlation(pred.reshape(1, -1), target.reshape(1, -1).to(pred.dtype))[0]


def group_rank_loss(pred: torch.Tensor, target: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
    """:func:`rank_agreement_loss` inside each group of the batch (``groups [N]``: a group id per item, −1 for none),
    averaged over the groups of at least 3 items: what orders photos of one kind, which telling the kinds apart
    cannot satisfy (0 in the graph when no group is that large)."""
    pred, target, groups = pred.reshape(-1), target.reshape(-1).to(pred.dtype), groups.reshape(-1)
    terms = [rank_agreement_loss(pred[groups == g], target[groups == g]) for g in torch.unique(groups)
             if g >= 0 and int((groups == g).sum()) >= 3]
    return torch.stack(terms).mean() if terms else pred.sum() * 0.0


def _masked_mean(values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean of per-sample ``values [N]`` where ``mask``; 0 (in the graph) when the mask is empty."""
    if mask is None:
        return values.mean()
    weights = mask.reshape(-1).to(values.dtype)
    safe = torch.where(weights > 0, values, torch.zeros_like(values))  # masked NaN must not leak
    return (safe * weights).sum() / weights.sum().clamp_min(1.0)


def _kl_per_sample(log_pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """KL(target ‖ pred) per sample, from log-probabilities of pred and probabilities of target."""
    return F.kl_div(log_pred, target, reduction="none").sum(dim=(1, 2, 3))


def correlation(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Pearson correlation per sample of two map batches ``[N, 1, h, w]`` (0 for a constant map)."""
    a = pred.flatten(1) - pred.flatten(1).mean(dim=1, keepdim=True)
    b = target.flatten(1) - target.flatten(1).mean(dim=1, keepdim=True)
    norm_a = (a.square().sum(dim=1) + EPS).sqrt()  # eps inside the root: finite gradients at 0
    norm_b = (b.square().sum(dim=1) + EPS).sqrt()
    return (a * b).sum(dim=1) / (norm_a * norm_b)


def map_loss(
    logits: torch.Tensor, heatmap: torch.Tensor, has_heatmap: torch.Tensor | None = None, cc_weight: float = 1.0
) -> torch.Tensor:
    """Gaze-map imitation: KL(heatmap ‖ softmax(logits)) + ``cc_weight`` · (1 − CC), over ``has_heatmap``."""
    log_pred = spatial_log_softmax(logits)
    target = heatmap.to(log_pred.dtype)
    per_sample = _kl_per_sample(log_pred, target) + cc_weight * (1.0 - correlation(log_pred.exp(), target))
    return _masked_mean(per_sample, has_heatmap)


def map_distill(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 2.0, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Map KD: T² · KL(softmax(teacher/T) ‖ softmax(student/T)) per sample, averaged over ``mask``."""
    log_student = spatial_log_softmax(student_logits / temperature)
    teacher = spatial_log_softmax(teacher_logits.detach().to(log_student.dtype) / temperature).exp()
    return _masked_mean(_kl_per_sample(log_student, teacher), mask) * temperature**2


def feature_distill(embedding: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Feature KD: mean cosine distance ``1 - cos`` between the student's projected embedding and the reference's ``[N, d]``."""
    return (1.0 - F.cosine_similarity(embedding, target.detach().to(embedding.dtype), dim=1)).mean()


def _detached(parts: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The loss terms for the log, out of the graph (still on the device: reading them waits for it)."""
    return {name: value.detach() for name, value in parts.items()}


def teacher_loss(
    score: torch.Tensor, logits: torch.Tensor, batch: dict[str, torch.Tensor], weights: LossWeights = LossWeights()
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Teacher: score regression + generic gaze map where ``has_heatmap``. Returns (total, parts)."""
    parts = {
        "score": score_loss(score, batch["score"]),
        "map": map_loss(logits, batch["heatmap"], batch["has_heatmap"], weights.cc),
    }
    total = weights.teacher_score * parts["score"] + weights.teacher_map * parts["map"]
    return total, _detached(parts)


def student_loss(
    score: torch.Tensor,
    logits: torch.Tensor,
    teacher_score: torch.Tensor,
    teacher_logits: torch.Tensor,
    batch: dict[str, torch.Tensor],
    weights: LossWeights = LossWeights(),
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Student: ground-truth score, score KD, map KD (generic items, ``user == 0``; every item
    when the batch has no ``user``), imitation of the user's gaze where ``has_heatmap``, and the
    batch's score order, pooled or inside each group of one kind (only when its weight is set)."""
    generic = batch["user"] == 0 if "user" in batch else None
    parts = {
        "score": score_loss(score, batch["score"]),
        "score_kd": score_loss(score, teacher_score.detach()),
        "map_kd": map_distill(logits, teacher_logits, weights.kd_temperature, generic),
        "gaze": map_loss(logits, batch["heatmap"], batch["has_heatmap"], weights.cc),
    }
    total = (
        weights.student_score * parts["score"]
        + weights.student_score_kd * parts["score_kd"]
        + weights.student_map_kd * parts["map_kd"]
        + weights.student_gaze * parts["gaze"]
    )
    if weights.student_score_rank > 0:
        parts["score_rank"] = rank_agreement_loss(score, batch["score"])
        total = total + weights.student_score_rank * parts["score_rank"]
    if weights.student_score_rank_group > 0 and "group" in batch:
        parts["score_rank_group"] = group_rank_loss(score, batch["score"], batch["group"])
        total = total + weights.student_score_rank_group * parts["score_rank_group"]
    return total, _detached(parts)
