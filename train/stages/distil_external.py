"""Distilling the student from an external model (ONNX or ResMem; label-free ``--teacher-model``): its scores of
the frames of ``--data`` become a LaMem-layout dataset under ``OUT/label-free``
(:mod:`memgaze.train.label_free.unlabelled_frames`), and the student is distilled from it; no ResNet teacher."""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import numpy as np
import torch

from memgaze.console import console
from memgaze.train import losses
from memgaze.train.compute import Compute
from memgaze.train.config import LabelFreeConfig
from memgaze.train.data.dataset import MemorabilityDataset, list_users
from memgaze.train.distributed import main_first
from memgaze.train.label_free.external_teacher import ExternalTeacher, open_teacher, parse_channels
from memgaze.train.kd_targets import BatchTargets, ExternalTargets
from memgaze.train.data.kind_batches import read_training_groups
from memgaze.train.label_free.unlabelled_frames import FOLDER, prepare, read_targets
from memgaze.train.stages.context import StageContext, StageOutcome
from memgaze.train.stages.student import TargetSource, train_student


@dataclasses.dataclass
class LabelFreeOutcome:
    """The distilled student, the distillation report, and what the checkpoint records of its teacher."""

    student: StageOutcome
    context: StageContext  # the run on the label-free dataset
    report: dict[str, Any]
    teacher: dict[str, Any]


def open_external(settings: LabelFreeConfig, compute: Compute) -> ExternalTeacher:
    """The external model of ``settings.teacher_model`` on the training device, CPU threads bounded to this process's
    share of the machine (one-line error when it cannot be used)."""
    assert settings.teacher_model is not None
    mean = parse_channels(settings.teacher_mean, "--teacher-mean")
    std = parse_channels(settings.teacher_std, "--teacher-std")
    return open_teacher(settings.teacher_model, settings.teacher_size, mean, std, device=compute.device,
                        threads=compute.ctx.cpus)


def distil_from_external(
    ctx: StageContext, external: ExternalTeacher, settings: LabelFreeConfig, *, epochs: int, loss: losses.LossWeights,
    backbone: str,
) -> LabelFreeOutcome:
    """Score ``ctx.root``'s images and videos with ``external`` (cached), write them as a dataset and
    distil the student from it."""
    report = label_frames(ctx, external, settings)
    online = external.online_by_default if settings.teacher_online is None else settings.teacher_online
    given = read_targets(ctx.out / FOLDER)
    # cached: the model's maps of whole frames are the generic viewer's map targets; online, it maps each crop
    data = ctx.with_root(ctx.out / FOLDER, generic_maps=None if online else given.maps, groups=read_training_groups(ctx.root))
    if ctx.main:
        how = "on every augmented batch (online)" if online else "through its cached outputs on whole frames"
        console.print(f"the student imitates {external.name} {how}; it runs on {external.runs_on}", soft_wrap=True)
    targets = external_targets(external, online, given.features)
    student = train_student(data, epochs=epochs, targets=targets, loss=loss, backbone=backbone)
    test = student.test
    report.update(
        teacher_online=online, spearman_vs_teacher=test["spearman"], pearson_vs_teacher=test["pearson"],
        gaze_users=list_users(data.root),
    )
    if ctx.main:
        console.print(
            f"distilled from {external.name} ({external.version}) on {report['frames']} unlabelled frames "
            f"({report['train']} train, {report['val']} val, {report['held_out']} held out); student vs teacher "
            f"on the held-out frames: Spearman {test['spearman']:.4f}, Pearson {test['pearson']:.4f}",
            soft_wrap=True,
        )
    teacher = {"teacher_model": external.name, "teacher_version": external.version, "teacher_online": online}
    return LabelFreeOutcome(student, data, report, teacher)


def label_frames(ctx: StageContext, external: ExternalTeacher, settings: LabelFreeConfig) -> dict[str, Any]:
    """Rank 0 scores the frames of ``ctx.root`` with ``external`` into ``OUT/label-free`` (cached) and returns its
    report; the other processes wait for it (:func:`main_first`: however long it takes) and return an empty one."""
    report: dict[str, Any] = {}
    with main_first(ctx.compute.ctx):
        if ctx.main:
            report = prepare(
                ctx.root, ctx.out, external, every=settings.video_every, min_change=settings.video_min_change,
                fold=ctx.fold, warnings=ctx.warnings,
            ).summary
    return report


def external_targets(external: ExternalTeacher, online: bool, features: Mapping[str, np.ndarray] | None = None) -> TargetSource:
    """Targets from ``external``: the dataset's scores are its cached ones (or, ``online``, its outputs
    on each augmented crop), its features of each training image where it gave them, with the loss
    weights of :func:`label_free_weights`."""

    def source(ctx: StageContext, train_set: MemorabilityDataset, loss: losses.LossWeights) -> tuple[BatchTargets, losses.LossWeights]:
        scores = torch.from_numpy(train_set.scores).to(ctx.compute.device)
        embedding = None
        if features is not None and loss.student_feature_kd > 0:
            rows = np.stack([features[image.name] for image in train_set.images])
            embedding = torch.from_numpy(rows).to(ctx.compute.device)
        return ExternalTargets(external, scores, online, embedding), label_free_weights(loss, train_set.scores)

    return source


def label_free_weights(weights: losses.LossWeights, scores: np.ndarray) -> losses.LossWeights:
    """Label-free loss weights: the labels are the external model's scores, so of the two score
    terms only the distillation one remains, measured in units of the training scores' variance
    (an external model's scores may span a narrow range, where their MSE vanishes next to the
    map terms)."""
    per_variance = 1.0 / max(float(np.var(scores)), 1e-8)
    return dataclasses.replace(weights, student_score=0.0, student_score_kd=weights.student_score_kd * per_variance)
