"""What every training stage needs, passed explicitly: the compute setup, the data root, the
run-wide settings, and the shared warning counter and metric log."""

from __future__ import annotations

import contextlib
import dataclasses
import math
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from torch import nn

from memgaze.console import WarningCounter, console
from memgaze.errors import fail
from memgaze.train.checkpoint import run_checkpoint, save_checkpoint
from memgaze.train.data.augment import JointAugment
from memgaze.train.compute import Compute
from memgaze.train.config import AugmentConfig, OptimConfig, monitor_terms
from memgaze.train.curves import MetricLog
from memgaze.train.data.dataset import MemorabilityDataset
from memgaze.train.distributed import barrier, main_first
from memgaze.train.loop import StageResult, StageSpec, train_stage
from memgaze.train.models import count_macs, count_params, map_size


@dataclasses.dataclass(frozen=True)
class StageContext:
    """The inputs shared by the stages of one ``memgaze-train`` run."""

    compute: Compute
    out: Path
    root: Path  # the dataset in the LaMem layout
    synthetic: bool
    fold: int
    image_size: int
    batch_size: int
    seed: int
    cache: bool
    resume: bool
    optim: OptimConfig
    warnings: WarningCounter
    log: MetricLog | None
    generic_maps: Mapping[str, np.ndarray] | None = None  # the generic viewer's map target per image (a reference model's)
    groups: Mapping[str, str] | None = None  # the group (kind) of each image, for batches composed by group
    augmentation: AugmentConfig = dataclasses.field(default_factory=AugmentConfig)  # of the datasets built with augment=True

    @property
    def main(self) -> bool:
        """True on the process that writes files (rank 0)."""
        return self.compute.ctx.is_main

    @property
    def map_size(self) -> tuple[int, int]:
        return map_size(self.image_size)

    def with_root(
        self, root: Path, synthetic: bool | None = None, generic_maps: Mapping[str, np.ndarray] | None = None,
        groups: Mapping[str, str] | None = None,
    ) -> StageContext:
        """The same run on another dataset root (with that root's generic-viewer map targets and groups, if any)."""
        return dataclasses.replace(self, root=root, synthetic=self.synthetic if synthetic is None else synthetic,
                                   generic_maps=generic_maps, groups=groups)

    def dataset(self, split: str, mode: str, users: list[str] | None = None, augment: bool = False) -> MemorabilityDataset:
        """A split of the data; ``users`` are the real users (model index 1 + position).

        With the image cache under torchrun, rank 0 builds it while the others wait (:func:`main_first`: however
        long it takes), then they reuse it.
        """
        cache = (self.out / "cache") if self.cache else None
        with main_first(self.compute.ctx) if cache is not None else contextlib.nullcontext():
            data = MemorabilityDataset(
                self.root, split, fold=self.fold, image_size=self.image_size, map_size=self.map_size, users=users,
                mode=mode, augment=JointAugment(self.image_size, self.augmentation) if augment else None, cache=cache,
                warnings=self.warnings, generic_maps=self.generic_maps, groups=self.groups,
            )
        if len(data) == 0:
            fail(f"{self.root}: the {split} split has no usable images")
        return data

    def fit(self, spec: StageSpec, optim: OptimConfig | None = None, batch_size: int | None = None) -> StageResult:
        """Train ``spec`` with the one training loop (resumable, best weights restored)."""
        return train_stage(
            spec, self.compute, optim or self.optim, batch_size=batch_size or self.batch_size,
            out=self.out, resume=self.resume, log=self.log,
        )


@dataclasses.dataclass
class StageOutcome:
    """A trained model, its checkpoint config and its test metrics."""

    kind: str  # teacher | student
    model: nn.Module
    config: dict[str, Any]
    test: dict[str, Any]
    epochs: int


def save_outcome(ctx: StageContext, outcome: StageOutcome, training: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write ``OUT/<kind>.safetensors`` with its test metrics; return its metrics.json entry."""
    config = outcome.config
    config["metrics"] = {"test": outcome.test}
    config["training"] = {"epoch": outcome.epochs, "stage": outcome.kind, "data": str(ctx.root), "synthetic": ctx.synthetic, **(training or {})}
    entry = {"params": count_params(outcome.model), "macs": count_macs(outcome.model, ctx.image_size), "test": outcome.test}
    if ctx.main:
        save_checkpoint(run_checkpoint(ctx.out, outcome.kind), outcome.model.to("cpu"), config)
        scores = "  ".join(f"{k} {v:.4f}" for k, v in outcome.test.items() if isinstance(v, float))
        console.print(f"{outcome.kind}: test {scores}", soft_wrap=True)
    barrier(ctx.compute.ctx)
    return entry


def monitor(spec: str, allowed: tuple[str, ...], key: str) -> Callable[[dict[str, float]], float]:
    """Early-stopping value: the sum of the ``val_<term>`` metrics that ``spec`` names (NaN counts as -1)."""
    terms = monitor_terms(spec, allowed, key)
    return lambda metrics: sum(_finite(metrics[f"val_{term}"]) for term in terms)


def trunk_lr_mult(configured: float | None, model: nn.Module) -> float:
    """The trunk's learning rate as a multiple of its stage's: ``configured`` when set, else 0.1 for a trunk that
    started from pretrained weights (``model.pretrained_backbone``: fine-tuned gently) and 1 for a random one."""
    if configured is not None:
        return configured
    return 0.1 if model.pretrained_backbone else 1.0


def freezes_trunk_bn(configured: bool | None, model: nn.Module) -> bool:
    """Whether the student trunk keeps its batch-norm statistics: ``configured`` when set, else only for a trunk that
    started from pretrained weights (statistics of small fine-tuning batches would replace ImageNet's, and with
    them the ranges INT8 calibration finds)."""
    return bool(model.pretrained_backbone) if configured is None else configured


def prefixed(prefix: str, values: dict[str, float]) -> dict[str, float]:
    return {prefix + k: v for k, v in values.items()}


def _finite(value: float) -> float:
    return value if math.isfinite(value) else -1.0
