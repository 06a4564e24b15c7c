"""Device choice and ``torchrun`` / DistributedDataParallel helpers.

``torchrun --nproc_per_node N memgaze-train ...`` sets ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``/``LOCAL_WORLD_SIZE``;
:func:`setup` then joins the process group (gloo on CPU, nccl on CUDA, each process on the GPU of its local rank),
whose collectives keep their backend's timeout (NCCL's: 10 minutes), and a second, CPU-side (gloo) group in which
the other processes wait while rank 0 does work alone (:func:`main_first`). Only rank 0 writes files and prints;
the helpers here keep that rule in one place.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from datetime import timedelta
from typing import Any, Iterator

import torch
import torch.distributed as dist

from memgaze.errors import fail

# How long the other processes wait while rank 0 works alone (labelling frames, building the image cache): longer
# than any such work. A rank 0 that fails ends the others sooner: torchrun stops every process when one fails.
WAIT_TIMEOUT = timedelta(days=7)


@dataclasses.dataclass(frozen=True)
class DistContext:
    """Where this process runs: its device, rank, the number of processes (on this machine: ``local_world_size``),
    and the CPU group of :func:`main_first` (None when alone)."""

    device: torch.device
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1
    waiting: Any = dataclasses.field(default=None, compare=False, repr=False)

    @property
    def is_main(self) -> bool:
        """True on the process that writes files and prints (rank 0)."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def cpus(self) -> int:
        """The CPUs this process may use, shared with the other processes on this machine (at least 1)."""
        available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        return max(1, available // self.local_world_size)


def pick_device(name: str, local_rank: int = 0, world_size: int = 1) -> torch.device:
    """``auto`` → CUDA when available else CPU; ``cuda`` → this process's GPU; one-line error if absent, and for
    ``cuda:N`` under torchrun (every process would take that one GPU)."""
    if world_size > 1 and name.startswith("cuda:"):
        fail(f"--device {name} under torchrun would put all {world_size} processes on one GPU: give --device cuda "
             "(each process then uses the GPU of its local rank; CUDA_VISIBLE_DEVICES chooses which GPUs)")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            fail(f"--device {name}: CUDA is not available on this machine (use --device cpu)")
        device = torch.device(name if ":" in name else f"cuda:{local_rank}")
        if device.index is not None and device.index >= torch.cuda.device_count():
            fail(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) visible to process {local_rank}")
        torch.cuda.set_device(device)
        return device
    if name != "cpu":
        fail(f"--device must be auto, cpu or cuda[:N], got {name!r}")
    return torch.device("cpu")


def setup(device_name: str, timeout: timedelta | None = None) -> DistContext:
    """Pick the device and, under ``torchrun``, join the process group (collective ``timeout``: the backend's when
    None) and create the waiting group of :func:`main_first`."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
    device = pick_device(device_name, local_rank, world)
    waiting = None
    if world > 1:
        if not dist.is_initialized():
            cuda = device.type == "cuda"
            dist.init_process_group(backend="nccl" if cuda else "gloo", timeout=timeout, device_id=device if cuda else None)
        waiting = dist.new_group(backend="gloo", timeout=WAIT_TIMEOUT)
    return DistContext(device=device, rank=rank, world_size=world, local_rank=local_rank, local_world_size=local_world,
                       waiting=waiting)


def cleanup() -> None:
    """Leave the process group, if one was joined."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


@contextlib.contextmanager
def main_first(ctx: DistContext) -> Iterator[None]:
    """Rank 0 runs the block before the other processes do: for work one process does and the others then reuse
    (labelling frames with an external model, building the image cache). The others wait in the CPU group's barrier
    (:data:`WAIT_TIMEOUT`), outside the group that trains: however long rank 0 takes, no collective timeout and no
    NCCL watchdog ends them, as a barrier of that group would after 10 minutes."""
    if ctx.distributed and not ctx.is_main:
        dist.barrier(group=ctx.waiting)
    yield
    if ctx.distributed and ctx.is_main:
        dist.barrier(group=ctx.waiting)


def barrier(ctx: DistContext) -> None:
    """Wait for every process (no-op when alone); only where none of them has long work to finish first."""
    if ctx.distributed:
        dist.barrier()


def all_gather_objects(ctx: DistContext, obj: Any) -> list[Any]:
    """Every process's ``obj``, in rank order (``[obj]`` when alone)."""
    if not ctx.distributed:
        return [obj]
    gathered: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(gathered, obj)
    return gathered


def all_reduce(ctx: DistContext, value: torch.Tensor, op: Any = None) -> torch.Tensor:
    """``value`` reduced over processes (summed, or by ``op``: a ``torch.distributed.ReduceOp``); itself when alone."""
    if ctx.distributed:
        value = value.clone()
        dist.all_reduce(value, op=dist.ReduceOp.SUM if op is None else op)
    return value
