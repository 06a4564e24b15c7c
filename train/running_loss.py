"""An epoch's training loss and its terms, summed on the device step by step (no host sync per step), reduced over
processes once per epoch, with the first step whose loss was not finite."""

from __future__ import annotations

import torch
import torch.distributed as dist

from memgaze.train.distributed import DistContext, all_gather_objects, all_reduce

NO_STEP = 2**62  # "no non-finite loss yet" (a MIN-reduction leaves it only when every process has none)


class RunningLoss:
    """Sums of the loss and of each named term over the steps of one epoch, kept on ``device``."""

    def __init__(self, device: torch.device) -> None:
        self.total = torch.zeros((), device=device)
        self.parts: dict[str, torch.Tensor] = {}
        self.steps = 0
        self.first_bad = torch.full((), NO_STEP, dtype=torch.int64, device=device)
        self.bad_value = torch.zeros((), device=device)

    def add(self, step: int, loss: torch.Tensor, parts: dict[str, torch.Tensor]) -> None:
        """Step ``step``'s loss and terms (detached; none of this waits for the device)."""
        loss = loss.detach().float()
        bad = ~torch.isfinite(loss) & (self.first_bad == NO_STEP)
        self.first_bad = torch.where(bad, step, self.first_bad)
        self.bad_value = torch.where(bad, loss, self.bad_value)
        self.total += loss
        for name, value in parts.items():
            self.parts[name] = self.parts.get(name, 0.0) + value.detach().float()
        self.steps += 1

    def first_non_finite(self, ctx: DistContext) -> tuple[int, float] | None:
        """``(step, loss)`` of the first non-finite loss on any process so far, or None (one small all-reduce and one
        host sync; the loss value is gathered only when there is one)."""
        first = int(all_reduce(ctx, self.first_bad, dist.ReduceOp.MIN).item())
        if first == NO_STEP:
            return None
        found = [pair for pair in all_gather_objects(ctx, (int(self.first_bad), float(self.bad_value))) if pair[0] == first]
        return found[0]

    def means(self, ctx: DistContext) -> tuple[float, dict[str, float]]:
        """The epoch's mean loss and mean of each term over every process's steps (one all-reduce, one host sync)."""
        names = sorted(self.parts)
        stacked = torch.stack([self.total, *(torch.as_tensor(self.parts[n], device=self.total.device) for n in names)])
        values = (all_reduce(ctx, stacked) / max(1, self.steps * ctx.world_size)).tolist()
        return values[0], dict(zip(names, values[1:]))
