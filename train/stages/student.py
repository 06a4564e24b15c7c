"""The student stage: distillation of scores and maps from a teacher, imitation of each user's
gaze, user conditioning. Where the teacher's targets come from is the caller's choice
(:data:`TargetSource`): the ResNet teacher of this run, or an external model (label-free)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from memgaze.errors import fail
from memgaze.train import losses
from memgaze.train.checkpoint import load_checkpoint
from memgaze.train.compute import Batch, Compute
from memgaze.train.config import STUDENT_MONITORS, OptimConfig
from memgaze.train.data.dataset import MemorabilityDataset, list_users
from memgaze.train.evaluate import evaluate_maps, predict_scores, evaluate_scores
from memgaze.train.kd_targets import BatchTargets, ResNetTargets
from memgaze.train.data.kind_batches import KindBatchSampler
from memgaze.train.loop import StageSpec
from memgaze.train.models import Student, build_model, default_config
from memgaze.train.stages.context import StageContext, StageOutcome, freezes_trunk_bn, monitor, prefixed, trunk_lr_mult
from memgaze.train.stages.heldout import student_metrics

USER_MODULES = ("users.", "films.", "query.")

# (context, the student's training set, the configured loss weights) -> the batch targets and the weights to use
TargetSource = Callable[[StageContext, MemorabilityDataset, losses.LossWeights], tuple[BatchTargets, losses.LossWeights]]


def train_student(
    ctx: StageContext, *, epochs: int, targets: TargetSource, loss: losses.LossWeights, backbone: str
) -> StageOutcome:
    """Train the user-conditioned student (on the ``backbone`` trunk) on ``ctx.root`` against ``targets``; test scores and maps."""
    people = list_users(ctx.root)
    users = ["generic", *people]
    train_set = ctx.dataset("train", "user", people, augment=True)
    val_scores = ctx.dataset("val", "image")
    val_maps = ctx.dataset("val", "user", people)
    batch_targets, weights = targets(ctx, train_set, loss)
    if not batch_targets.map_from_teacher:
        weights = dataclasses.replace(weights, student_map_kd=0.0)
    features = batch_targets.features if weights.student_feature_kd > 0 else None
    torch.manual_seed(ctx.seed)
    feature_dim = 0 if features is None else int(features.shape[1])
    config = default_config("student", ctx.image_size, users, backbone=backbone, feature_dim=feature_dim)
    model = build_model(config)
    assert isinstance(model, Student)
    model.score_head.map_grad = weights.student_score_map_grad
    if ctx.optim.lr_student_backbone_mult == 0 or freezes_trunk_bn(ctx.optim.freeze_student_bn, model):
        model.freeze_backbone(weights=ctx.optim.lr_student_backbone_mult == 0)
    trunk: dict[str, torch.Tensor] = {}  # the stride-32 features of the batch, for feature distillation
    hook = model.enc32.register_forward_hook(lambda module, inputs, output: trunk.update(c32=output)) if features is not None else None

    def loss_fn(net: nn.Module, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        score, logits = net(batch["image"], batch["user"])
        t_score, t_logits = batch_targets(batch, (logits.shape[-2], logits.shape[-1]))
        total, parts = losses.student_loss(score.float(), logits.float(), t_score, t_logits, batch, weights)
        if features is not None:
            assert model.feature_head is not None  # built with feature_dim > 0 when features are given
            embedding = model.feature_head(trunk.pop("c32").float().mean(dim=(2, 3)))
            distance = losses.feature_distill(embedding, features[batch["index"]])
            total, parts["feature_kd"] = total + weights.student_feature_kd * distance, distance.detach()
        return total, parts

    def validate(net: nn.Module) -> dict[str, float]:
        result = prefixed("val_", evaluate_scores(net, val_scores, ctx.compute, ctx.batch_size))
        maps = evaluate_maps(net, val_maps, ctx.compute, ctx.batch_size, users)
        result["val_cc"] = maps["cc_own_user"] if people else maps["cc_generic_target"]  # no users: the reference's maps
        return result

    spec = StageSpec(
        name="student",
        model=model,
        param_groups=student_param_groups(model, ctx.optim),
        loss_fn=loss_fn,
        validate=validate,
        monitor=monitor(ctx.optim.monitor_student, STUDENT_MONITORS, "optim.monitor_student"),
        train_set=train_set,
        epochs=epochs,
        batches=kind_batches(train_set, weights, ctx.batch_size),
    )
    result = ctx.fit(spec)
    if hook is not None:
        hook.remove()
    return StageOutcome("student", model, config, student_metrics(ctx, model, users), result.epochs_run)


def kind_batches(train_set: MemorabilityDataset, weights: losses.LossWeights, batch_size: int) -> Any:
    """Batches composed of groups of one kind when the score-order loss inside groups is on (else None: shuffled)."""
    if weights.student_score_rank_group <= 0:
        return None
    if train_set.item_groups is None:
        fail("loss.student_score_rank_group needs groups.json beside the training images (image name -> group)")
    return lambda generator: KindBatchSampler(train_set.item_groups, batch_size, generator)


def resnet_teacher(path: Path, compute: Compute) -> TargetSource:
    """Targets from this run's ResNet teacher at ``path`` (loaded now, before the student is seeded):
    its scores of the un-augmented training images, and its maps of each augmented batch."""
    if not path.is_file():
        fail(f"no teacher checkpoint at {path}: train it first (--stage teacher or --stage all)")
    teacher, _ = load_checkpoint(path, expect_kind="teacher")
    teacher = compute.prepare(teacher).eval().requires_grad_(False)

    def source(ctx: StageContext, train_set: MemorabilityDataset, loss: losses.LossWeights) -> tuple[BatchTargets, losses.LossWeights]:
        plain = ctx.dataset("train", "image")
        scores = torch.from_numpy(predict_scores(teacher, plain, ctx.compute, ctx.batch_size)[:, 0]).float().to(ctx.compute.device)
        return ResNetTargets(teacher, scores), loss

    return source


def student_param_groups(model: Student, optim: OptimConfig) -> list[dict[str, Any]]:
    """The student's parameters at ``optim.lr_student``; the user conditioning (embedding, FiLM, query) at
    ``lr_user_mult`` ×, a pretrained trunk at ``lr_student_backbone_mult`` × (default 0.1; 1 from scratch;
    0 freezes it, batch-norm statistics included: :meth:`Student.freeze_backbone`)."""
    lr = optim.lr_student
    trunk = {id(p) for p in model.backbone_parameters()}
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    user = [p for n, p in named if n.startswith(USER_MODULES)]
    rest = [p for n, p in named if not n.startswith(USER_MODULES) and id(p) not in trunk]
    backbone = [p for _, p in named if id(p) in trunk]
    mult = trunk_lr_mult(optim.lr_student_backbone_mult, model)
    return [{"params": rest, "lr": lr}, {"params": user, "lr": lr * optim.lr_user_mult}, {"params": backbone, "lr": lr * mult}]
