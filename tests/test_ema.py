"""The moving average of the weights (``optim.ema_decay``): what the loop keeps is the average of the weights after
every step, and a run stopped after an epoch and resumed ends exactly where an uninterrupted one ends."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from memgaze.errors import MemgazeError
from memgaze.train.compute import Batch, make_compute
from memgaze.train.config import OptimConfig
from memgaze.train.distributed import DistContext
from memgaze.train.loop import StageSpec, train_stage

EPOCHS, DECAY = 3, 0.9


class Points(Dataset[Batch]):
    """A fixed regression set: 24 points of 4 features and a linear target."""

    def __init__(self) -> None:
        generator = torch.Generator().manual_seed(5)
        self.x = torch.randn(24, 4, generator=generator)
        self.y = self.x @ torch.tensor([1.0, -2.0, 0.5, 3.0])

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int) -> Batch:
        return {"x": self.x[index], "y": self.y[index]}


class Interrupted(Exception):
    """Stands in for a kill after an epoch's state was written."""


def _spec(seen: list[dict[str, torch.Tensor]] | None = None, stop_at: int | None = None, first_epoch: int = 1) -> StageSpec:
    """A linear model trained on :class:`Points` from epoch ``first_epoch``; ``seen`` collects the weights each step
    starts from; the validation of epoch ``stop_at`` raises :class:`Interrupted`. Each epoch validates better than the
    last, so the last is kept."""
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    epoch = iter(range(first_epoch, EPOCHS + 1))

    def loss_fn(wrapped: nn.Module, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if seen is not None:
            seen.append({k: v.detach().clone() for k, v in wrapped.state_dict().items()})
        return ((wrapped(batch["x"]).squeeze(1) - batch["y"]) ** 2).mean(), {}

    def validate(evaluated: nn.Module) -> dict[str, float]:
        number = next(epoch)
        if number == stop_at:
            raise Interrupted
        return {"epoch": float(number)}

    return StageSpec(
        name="points", model=model, param_groups=[{"params": list(model.parameters()), "lr": 0.05}], loss_fn=loss_fn,
        validate=validate, monitor=lambda metrics: metrics["epoch"], train_set=Points(), epochs=EPOCHS,
    )


def _train(spec: StageSpec, out: Path, ema_decay: float, resume: bool = False) -> dict[str, torch.Tensor]:
    compute = make_compute(DistContext(device=torch.device("cpu")), "off", 0, seed=0)
    optim = dataclasses.replace(OptimConfig(), ema_decay=ema_decay, patience=0)
    train_stage(spec, compute, optim, batch_size=4, out=out, resume=resume, log=None)
    return {k: v.detach().clone() for k, v in spec.model.state_dict().items()}


def test_kept_weights_are_the_moving_average_of_every_step(tmp_path: Path) -> None:
    seen: list[dict[str, Any]] = []
    plain = _train(_spec(seen), tmp_path / "plain", 0.0)
    after_each_step = [*seen[1:], plain]  # the weights each step left: the next step's start, then the end
    expected = dict(after_each_step[0])
    for weights in after_each_step[1:]:
        expected = {k: DECAY * expected[k] + (1 - DECAY) * weights[k] for k in expected}

    averaged = _train(_spec(), tmp_path / "averaged", DECAY)
    for key in expected:
        torch.testing.assert_close(averaged[key], expected[key], rtol=1e-5, atol=1e-6)
        assert not torch.allclose(averaged[key], plain[key], atol=1e-3), "the average should lag the trained weights"


def test_resumed_run_ends_where_an_uninterrupted_one_ends(tmp_path: Path) -> None:
    whole = _train(_spec(), tmp_path / "whole", DECAY)
    with pytest.raises(Interrupted):
        _train(_spec(stop_at=2), tmp_path / "broken", DECAY)
    resumed = _train(_spec(first_epoch=2), tmp_path / "broken", DECAY, resume=True)
    for key in whole:
        torch.testing.assert_close(resumed[key], whole[key], rtol=0, atol=1e-7)


def test_a_state_without_the_average_is_not_resumed_with_one(tmp_path: Path) -> None:
    with pytest.raises(Interrupted):
        _train(_spec(stop_at=2), tmp_path / "plain", 0.0)
    with pytest.raises(MemgazeError, match="written with ema_decay=0.0, this run has 0.9"):
        _train(_spec(first_epoch=2), tmp_path / "plain", DECAY, resume=True)


def test_a_state_written_by_other_processes_is_not_resumed(tmp_path: Path) -> None:
    with pytest.raises(Interrupted):
        _train(_spec(stop_at=2), tmp_path / "run", 0.0)
    path = tmp_path / "run" / "state" / "points.pt"
    state = torch.load(path, weights_only=True)
    state["extra"]["run"]["processes"] = 2  # as torchrun --nproc-per-node 2 would have written it
    torch.save(state, path)
    with pytest.raises(MemgazeError, match="written with processes=2, this run has 1"):
        _train(_spec(first_epoch=2), tmp_path / "run", 0.0, resume=True)


def test_the_first_non_finite_loss_is_named_by_its_step(tmp_path: Path) -> None:
    spec = _spec()
    steps = iter(range(1, 100))
    finite = spec.loss_fn

    def loss_fn(wrapped: nn.Module, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        loss, parts = finite(wrapped, batch)
        return (loss * float("inf") if next(steps) == 4 else loss), parts  # checked once, at the epoch's end

    with pytest.raises(MemgazeError, match="points: loss is inf at epoch 1 step 4 "):
        _train(dataclasses.replace(spec, loss_fn=loss_fn), tmp_path / "inf", 0.0)
