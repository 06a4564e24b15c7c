"""The teacher stage: the ResNet-50 attention teacher regresses the scores (and the generic gaze map)."""

from __future__ import annotations

import torch
from torch import nn

from memgaze.train import losses
from memgaze.train.config import RESNET50, TEACHER_MONITORS
from memgaze.train.evaluate import evaluate_scores
from memgaze.train.compute import Batch
from memgaze.train.loop import StageSpec
from memgaze.train.models import Teacher, build_model, default_config
from memgaze.train.stages.context import StageContext, StageOutcome, monitor, prefixed, trunk_lr_mult
from memgaze.train.stages.heldout import teacher_metrics


def train_teacher(
    ctx: StageContext, *, epochs: int, backbone_weights: str | None, loss: losses.LossWeights, arch: str = RESNET50
) -> StageOutcome:
    """Train the teacher (``arch`` trunk) on ``ctx.root``'s train split (best validation epoch kept); test it."""
    torch.manual_seed(ctx.seed)
    config = default_config("teacher", ctx.image_size, backbone_weights=backbone_weights or "imagenet", arch=arch)
    model = build_model(config)
    assert isinstance(model, Teacher)
    train_set = ctx.dataset("train", "image", augment=True)
    val_set = ctx.dataset("val", "image")

    def loss_fn(net: nn.Module, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        score, logits = net(batch["image"])
        return losses.teacher_loss(score.float(), logits.float(), batch, loss)

    lr = ctx.optim.lr_teacher
    spec = StageSpec(
        name="teacher",
        model=model,
        param_groups=[
            {"params": model.backbone_parameters(), "lr": lr * trunk_lr_mult(ctx.optim.lr_backbone_mult, model)},
            {"params": model.head_parameters(), "lr": lr},
        ],
        loss_fn=loss_fn,
        validate=lambda net: prefixed("val_", evaluate_scores(net, val_set, ctx.compute, ctx.batch_size)),
        monitor=monitor(ctx.optim.monitor_teacher, TEACHER_MONITORS, "optim.monitor_teacher"),
        train_set=train_set,
        epochs=epochs,
    )
    result = ctx.fit(spec)
    return StageOutcome("teacher", model, config, teacher_metrics(ctx, model), result.epochs_run)

