"""Device choice and ``torchrun`` / DistributedDataParallel helpers.

``torchrun --nproc_per_node N memgaze-train ...`` sets ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``;
:func:`setup` then joins the process group (gloo on CPU, nccl on CUDA). Only rank 0 writes
files and prints; the helpers here keep that rule in one place.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import torch
import torch.distributed as dist

from memgaze.errors import fail


@dataclasses.dataclass(frozen=True)
class DistContext:
    """Where this process runs: its device, rank and the number of processes."""

    device: torch.device
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """True on the process that writes files and prints (rank 0)."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def pick_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` → CUDA when available else CPU; ``cuda`` → this process's GPU; one-line error if absent."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            fail(f"--device {name}: CUDA is not available on this machine (use --device cpu)")
        device = torch.device(name if ":" in name else f"cuda:{local_rank}")
        if device.index is not None and device.index >= torch.cuda.device_count():
            fail(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) present")
        torch.cuda.set_device(device)
        return device
    if name != "cpu":
        fail(f"--device must be auto, cpu or cuda[:N], got {name!r}")
    return torch.device("cpu")


def setup(device_name: str) -> DistContext:
    """Pick the device and, under ``torchrun``, join the process group."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(device_name, local_rank)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistContext(device=device, rank=rank, world_size=world, local_rank=local_rank)


def cleanup() -> None:
    """Leave the process group, if one was joined."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier(ctx: DistContext) -> None:
    """Wait for every process (no-op when alone)."""
    if ctx.distributed:
        dist.barrier()


def all_gather_objects(ctx: DistContext, obj: Any) -> list[Any]:
    """Every process's ``obj``, in rank order (``[obj]`` when alone)."""
    if not ctx.distributed:
        return [obj]
    gathered: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(gathered, obj)
    return gathered


def broadcast_object(ctx: DistContext, obj: Any) -> Any:
    """Rank 0's ``obj`` on every process."""
    if not ctx.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_reduce_mean(ctx: DistContext, value: torch.Tensor) -> torch.Tensor:
    """Mean of ``value`` over processes."""
    if ctx.distributed:
        value = value.clone()
        dist.all_reduce(value)
        value /= ctx.world_size
    return value
