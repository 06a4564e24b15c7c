"""How a training run computes and loads: its device and process, the precision rule (:mod:`memgaze.train.amp`),
channels_last, data-loading workers, the seeds of each process's random draws, and deterministic algorithms."""

from __future__ import annotations

import contextlib
import dataclasses
import os
from typing import Any, ContextManager, TypeVar

import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler

from memgaze.errors import fail
from memgaze.train.amp import Precision, device_precision
from memgaze.train.distributed import DistContext

AnyModule = TypeVar("AnyModule", bound=nn.Module)

Batch = dict[str, torch.Tensor]
MAX_WORKERS = 8  # data-loading workers per process at most, by default
# Sets the processes' seeds apart in their low 32 bits: all that torch's CPU generator (mt19937) is seeded with.
RANK_STRIDE = 0x9E3779B1  # odd, about 2**32 / the golden ratio


@dataclasses.dataclass(frozen=True)
class Compute:
    """How tensors are computed: device, process rank, precision, loader settings; always channels_last (faster
    convolutions on CUDA and on CPU alike)."""

    ctx: DistContext
    precision: Precision
    workers: int
    seed: int

    @property
    def device(self) -> torch.device:
        return self.ctx.device

    def autocast(self) -> ContextManager[Any]:
        """Autocast to the precision's dtype (CUDA); a no-op in fp32."""
        if self.precision.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.precision.dtype)

    def grad_scaler(self) -> torch.amp.GradScaler | None:
        """A gradient scaler where the precision needs one (fp16), else None."""
        return torch.amp.GradScaler(self.device.type) if self.precision.scaled else None

    def to_device(self, batch: Batch) -> Batch:
        """Copy a batch to the device (non-blocking from pinned memory); images channels_last."""
        moved = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
        if "image" in moved:
            moved["image"] = moved["image"].contiguous(memory_format=torch.channels_last)
        return moved

    def prepare(self, model: AnyModule) -> AnyModule:
        """Move a model to the device, channels_last."""
        model.to(self.device)
        model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        return model

    def describe(self) -> str:
        """One log line: where and how the run computes, and how many workers load its data."""
        ctx = self.ctx
        where = f"{ctx.world_size} processes ({self.device.type})" if ctx.distributed else str(self.device)
        return (f"compute: {where}, {self.precision.label}, channels_last; data loading: {self.workers} worker "
                f"process(es) per training process ({ctx.cpus} CPU(s) for each of the {ctx.local_world_size} on this machine)")


def make_compute(ctx: DistContext, amp: str, workers: int | None, seed: int) -> Compute:
    """The precision of :func:`memgaze.train.amp.device_precision`; ``workers`` per process (None: :func:`default_workers`)."""
    return Compute(ctx=ctx, precision=device_precision(ctx.device, amp),
                   workers=default_workers(ctx) if workers is None else workers, seed=seed)


def default_workers(ctx: DistContext) -> int:
    """Data-loading workers per process when none are asked for: none on the CPU (its cores compute the steps);
    with a GPU, one per CPU this process may use (its share of the machine's), at most :data:`MAX_WORKERS`."""
    return min(MAX_WORKERS, ctx.cpus) if ctx.device.type == "cuda" else 0


def epoch_seed(seed: int, epoch: int, rank: int = 0) -> int:
    """The seed of ``epoch``'s shuffled order (one process) and of its loader workers' random draws on process
    ``rank``: rank 0 draws what a single process draws, every other rank draws its own."""
    return seed * 1_000_003 + epoch + rank * RANK_STRIDE


def make_loader(dataset: Any, batch_size: int, compute: Compute, *, train: bool, batches: Any = None) -> DataLoader[Any]:
    """A loader sharded over processes; shuffled training order from :func:`reseed_loader`. ``batches`` (a function
    of the loader's generator returning a batch sampler) composes the batches itself, on one process only."""
    ctx = compute.ctx
    generator = torch.Generator().manual_seed(epoch_seed(compute.seed, 0, ctx.rank))
    if batches is not None:
        if ctx.distributed:
            fail("batches composed by group (loss.student_score_rank_group) run on one process only")
        return DataLoader(dataset, batch_sampler=batches(generator), num_workers=compute.workers,
                          pin_memory=compute.device.type == "cuda", generator=generator)
    sampler: Any = None
    if ctx.distributed:
        sampler = DistributedSampler(dataset, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=train, seed=compute.seed)
    elif train:
        sampler = RandomSampler(dataset, generator=generator)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=compute.workers,
        pin_memory=compute.device.type == "cuda",
        drop_last=train and len(dataset) > batch_size * ctx.world_size,
        generator=generator,
    )


def training_loader(dataset: Any, batch_size: int, compute: Compute, batches: Any = None) -> DataLoader[Any]:
    """A stage's shuffled training loader. On every rank but 0 this process's own random stream (augmentation when the
    loader has no workers, dropout) restarts from that rank's seed, so that no two processes draw alike; rank 0 keeps
    a single process's."""
    if compute.ctx.rank > 0:
        torch.manual_seed(epoch_seed(compute.seed, 0, compute.ctx.rank))
    return make_loader(dataset, batch_size, compute, train=True, batches=batches)


def reseed_loader(loader: DataLoader[Any], compute: Compute, epoch: int) -> None:
    """Make ``epoch``'s shuffling and worker seeds a function of (seed, epoch, rank) only."""
    assert loader.generator is not None
    loader.generator.manual_seed(epoch_seed(compute.seed, epoch, compute.ctx.rank))
    if isinstance(loader.sampler, DistributedSampler):
        loader.sampler.set_epoch(epoch)


def use_deterministic(device: torch.device, setting: bool | None) -> bool:
    """Deterministic algorithms where ``setting`` asks (None: on the CPU, where they are cheap and make ``--resume``
    exact; off on CUDA, where they cost speed and some kernels have none: see docs/training.md). ``warn_only``: an
    op without a deterministic kernel warns and runs. Returns whether they are on."""
    on = device.type == "cpu" if setting is None else setting
    if on and device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS's condition for reproducible results
    torch.use_deterministic_algorithms(on, warn_only=True)
    return on
