"""The generic epoch loop shared by the teacher and student stages.

AdamW + OneCycle (cosine, warmup), an optional exponential moving average of the weights (what is
validated, kept and saved when on), the precision rule's autocast and gradient scaler, channels_last, pinned
memory and non-blocking copies (:mod:`memgaze.train.compute`), a NaN/inf stop, an atomic training-state
checkpoint after every epoch (``OUT/state/<stage>.pt``: weights, optimizer, scheduler, scaler, averaged weights,
every process's RNG states, best metric, early-stop counter), ``--resume``, early stopping on a validation metric
and the best weights restored at the end.

Resume: data order and random draws depend only on (seed, epoch, rank) and the saved RNG states, so on the CPU
(deterministic algorithms on) a resumed run ends bit for bit where an uninterrupted one ends, with the same
number of processes. On CUDA it continues the same schedule, data order and random streams, but is not bit-exact:
some CUDA kernels (the backward of bilinear ``interpolate``, of adaptive average pooling, of ``Embedding`` unless
deterministic algorithms are on) add in an order that varies from run to run (docs/training.md).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader, Dataset

from memgaze.console import console
from memgaze.errors import fail
from memgaze.train.checkpoint import load_training_state, rng_state, save_training_state, set_rng_state
from memgaze.train.compute import Batch, Compute, reseed_loader, training_loader
from memgaze.train.config import OptimConfig
from memgaze.train.curves import MetricLog
from memgaze.train.distributed import all_gather_objects, barrier
from memgaze.train.running_loss import RunningLoss

STATE_FOLDER = "state"  # under --out: one resumable state per stage
CHECK_EVERY = 50  # steps between checks that the loss is finite (one small all-reduce and host sync each)
# (model, batch) -> (loss, its named terms: detached tensors, averaged once per epoch)
LossFn = Callable[[nn.Module, Batch], tuple[torch.Tensor, dict[str, torch.Tensor]]]


@dataclasses.dataclass
class StageSpec:
    """One trainable stage for :func:`train_stage`."""

    name: str
    model: nn.Module
    param_groups: list[dict[str, Any]]
    loss_fn: LossFn
    validate: Callable[[nn.Module], dict[str, float]]
    monitor: Callable[[dict[str, float]], float]
    train_set: Dataset[Any]
    epochs: int
    train_mode: bool = True  # False: batch-norm statistics and dropout stay as in eval (fitting an embedding only)
    batches: Any = None  # generator -> batch sampler composing the training batches (make_loader); None: shuffled


@dataclasses.dataclass
class StageResult:
    """What :func:`train_stage` reports: epochs run, best epoch and its validation metrics."""

    epochs_run: int
    best_epoch: int
    best_value: float
    best_metrics: dict[str, float]


@dataclasses.dataclass
class _Progress:
    """Where a stage's training stands: its field names are the ``progress`` entry of the saved state."""

    epoch: int = 0
    best_value: float = -math.inf
    best_epoch: int = 0
    best_metrics: dict[str, float] = dataclasses.field(default_factory=dict)
    bad_epochs: int = 0
    stopped: bool = False
    best_weights: dict[str, torch.Tensor] | None = None

    def record(self, epoch: int, value: float, metrics: dict[str, float], model: nn.Module, patience: int) -> None:
        """Epoch ``epoch`` validated at ``value``: keep its weights when it is the best so far; stop after
        ``patience`` epochs without one (0: never)."""
        self.epoch = epoch
        if value > self.best_value:
            self.best_value, self.best_epoch, self.best_metrics = value, epoch, metrics
            self.best_weights = _cpu_weights(model)
            self.bad_epochs = 0
        else:
            self.bad_epochs += 1
        self.stopped = patience > 0 and self.bad_epochs >= patience


def state_path(out: Path, stage: str) -> Path:
    """Where ``stage``'s training state lives."""
    return out / STATE_FOLDER / f"{stage}.pt"


def saved_states(out: Path) -> list[Path]:
    """The training states under ``out`` (what ``--resume`` continues from)."""
    return sorted((out / STATE_FOLDER).glob("*.pt"))


@dataclasses.dataclass
class TrainingRun:
    """One stage's training in progress: its model (and the DistributedDataParallel wrapper that trains it),
    loader, AdamW optimizer, OneCycle schedule, gradient scaler (fp16 only), moving average of the weights
    (``optim.ema_decay`` > 0) and progress, all saved after every epoch to ``path`` and restored from it by
    :meth:`resume`."""

    spec: StageSpec
    compute: Compute
    model: nn.Module
    wrapped: nn.Module
    loader: DataLoader[Any]
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler | None
    grad_clip: float
    path: Path
    ema_decay: float = 0.0
    ema: AveragedModel | None = None
    progress: _Progress = dataclasses.field(default_factory=_Progress)

    @classmethod
    def start(cls, spec: StageSpec, compute: Compute, optim: OptimConfig, batch_size: int, path: Path) -> TrainingRun:
        """Everything ``spec`` trains with, before its first epoch; one-line error for an empty training split."""
        model = compute.prepare(spec.model)
        wrapped: nn.Module = model
        if compute.ctx.distributed:
            wrapped = DistributedDataParallel(model, device_ids=[compute.device] if compute.device.type == "cuda" else None)
        loader = training_loader(spec.train_set, batch_size, compute, spec.batches)
        if len(loader) == 0:
            fail(f"{spec.name}: the training split has no usable samples")
        optimizer = torch.optim.AdamW(spec.param_groups, weight_decay=optim.weight_decay)
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer,
            max_lr=[group["lr"] for group in spec.param_groups],
            total_steps=max(1, spec.epochs * len(loader)),
            pct_start=optim.warmup_frac,
            cycle_momentum=False,
            div_factor=10.0,
            final_div_factor=100.0,
        )
        scaler = compute.grad_scaler()
        ema = None
        if optim.ema_decay > 0:
            # batch-norm statistics are not averaged: the averaged weights use the model's current ones
            ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(optim.ema_decay), use_buffers=False)
        return cls(
            spec, compute, model, wrapped, loader, optimizer, scheduler, scaler, optim.grad_clip, path, optim.ema_decay, ema
        )

    @property
    def identity(self) -> dict[str, Any]:
        """What a saved state must match to be resumed by this run."""
        return {
            "stage": self.spec.name, "processes": self.compute.ctx.world_size, "epochs": self.spec.epochs,
            "steps_per_epoch": len(self.loader), "ema_decay": self.ema_decay,
        }

    @property
    def evaluated(self) -> nn.Module:
        """The weights that are validated and kept: the moving average when there is one, else the model."""
        return self.ema.module if self.ema is not None else self.model

    @property
    def lr(self) -> float:
        """The first parameter group's learning rate now."""
        return float(self.scheduler.get_last_lr()[0])

    def train_one_epoch(self, epoch: int) -> tuple[float, dict[str, float]]:
        """One pass over the loader; the mean loss and the mean of each of its terms over every process's batches.
        A non-finite loss is a one-line error (checked every :data:`CHECK_EVERY` steps and at the end)."""
        spec, compute = self.spec, self.compute
        reseed_loader(self.loader, compute, epoch)
        self.wrapped.train(spec.train_mode)
        params = [p for group in self.optimizer.param_groups for p in group["params"]]
        running = RunningLoss(compute.device)
        with _progress_bar(compute, f"{spec.name} {epoch}/{spec.epochs}", len(self.loader)) as advance:
            for step, batch in enumerate(self.loader, 1):
                batch = compute.to_device(batch)
                with compute.autocast():
                    loss, parts = spec.loss_fn(self.wrapped, batch)
                running.add(step, loss, parts)
                if step % CHECK_EVERY == 0:
                    self._stop_unless_finite(running, epoch)
                self._update(loss, params)
                advance()
        self._stop_unless_finite(running, epoch)
        return running.means(compute.ctx)

    def _update(self, loss: torch.Tensor, params: list[torch.Tensor]) -> None:
        """Backward, clip, one optimizer and schedule step (through the scaler in fp16), the moving average."""
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
        else:
            loss.backward()
        if self.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(params, self.grad_clip)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update_parameters(self.model)

    def _stop_unless_finite(self, running: RunningLoss, epoch: int) -> None:
        """One-line error naming the first step whose loss was not finite, on any process (this epoch's state is
        never saved, so the last good checkpoint stays)."""
        found = running.first_non_finite(self.compute.ctx)
        if found is not None:
            kept = f"last good checkpoint kept: {self.path}" if self.path.is_file() else "no checkpoint written"
            fail(f"{self.spec.name}: loss is {found[1]} at epoch {epoch} step {found[0]} "
                 f"(learning rate too high or bad data?); stopped, {kept}")

    def save(self) -> None:
        """Write the whole training state atomically (rank 0); every rank's RNG state is included."""
        ranks_rng = all_gather_objects(self.compute.ctx, rng_state())
        progress = self.progress
        current = progress.best_epoch == progress.epoch
        if self.compute.ctx.is_main:
            save_training_state(
                self.path,
                optimizer=self.optimizer,
                epoch=progress.epoch,
                scheduler=self.scheduler,
                model=self.model,
                best=progress.best_value,
                extra={
                    "run": self.identity,
                    # the best weights are the model's own when this epoch is the best: not stored twice
                    "progress": {**vars(progress), "best_weights": None if current else progress.best_weights},
                    "scaler": self.scaler.state_dict() if self.scaler is not None else None,
                    "ema": self.ema.state_dict() if self.ema is not None else None,
                    "ranks_rng": ranks_rng,
                },
            )
        barrier(self.compute.ctx)

    def resume(self) -> None:
        """Restore the state :meth:`save` wrote; one-line error if it does not fit this run."""
        state = load_training_state(self.path, optimizer=self.optimizer, scheduler=self.scheduler, model=self.model, restore_rng=False)
        extra = state["extra"]
        written = {"ema_decay": 0.0, "processes": len(extra["ranks_rng"]), **extra.get("run", {})}  # older states had neither
        for key, value in self.identity.items():
            if written.get(key) != value:
                fail(
                    f"cannot resume from {self.path}: it was written with {key}={written.get(key)!r}, "
                    f"this run has {value!r} (use the same settings, or drop --resume to start over)"
                )
        if self.scaler is not None and extra["scaler"] is not None:
            self.scaler.load_state_dict(extra["scaler"])
        if self.ema is not None:
            self.ema.load_state_dict(extra["ema"])
        set_rng_state(extra["ranks_rng"][self.compute.ctx.rank])  # as many as processes: "processes" matched
        self.progress = _Progress(**extra["progress"])
        if self.progress.best_weights is None and self.progress.best_epoch == self.progress.epoch:
            self.progress.best_weights = _cpu_weights(self.evaluated)

    def finish(self) -> StageResult:
        """The best epoch's weights (averaged ones, with a moving average) in the model, in eval mode, and what the
        stage reports."""
        progress = self.progress
        if progress.best_weights is not None:
            self.model.load_state_dict(progress.best_weights)
        self.model.eval()
        return StageResult(progress.epoch, progress.best_epoch, progress.best_value, progress.best_metrics)


def train_stage(
    spec: StageSpec,
    compute: Compute,
    optim: OptimConfig,
    *,
    batch_size: int,
    out: Path,
    resume: bool,
    log: MetricLog | None,
) -> StageResult:
    """Train ``spec.model`` in place for up to ``spec.epochs`` epochs; best weights restored at the end (with
    ``optim.ema_decay`` > 0, the moving average of the weights is what is validated and restored).

    ``optim`` gives weight decay, warmup, gradient clipping and patience; the learning rates are
    ``spec.param_groups``'."""
    run = TrainingRun.start(spec, compute, optim, batch_size, state_path(out, spec.name))
    if resume and run.path.is_file():
        run.resume()
        if compute.ctx.is_main:
            console.print(f"{spec.name}: resumed after epoch {run.progress.epoch} from {run.path}")
    for epoch in range(run.progress.epoch + 1, spec.epochs + 1):
        if run.progress.stopped:
            break
        train_loss, parts = run.train_one_epoch(epoch)
        run.evaluated.eval()
        metrics = {"loss": train_loss, "lr": run.lr, **spec.validate(run.evaluated)}
        run.progress.record(epoch, spec.monitor(metrics), metrics, run.evaluated, optim.patience)
        # The log row goes first: a kill between the two re-runs this epoch, whose row then replaces it.
        if compute.ctx.is_main and log is not None:
            log.log(spec.name, epoch, {**metrics, **{f"loss_{name}": value for name, value in parts.items()}})
        run.save()
        if compute.ctx.is_main:
            _print_epoch(spec.name, epoch, spec.epochs, metrics, run.progress.best_epoch == epoch)
            if run.progress.stopped:
                console.print(
                    f"{spec.name}: early stop after epoch {epoch} (no better validation score "
                    f"for {optim.patience} epochs; best epoch {run.progress.best_epoch})"
                )
    return run.finish()


@contextlib.contextmanager
def _progress_bar(compute: Compute, label: str, total: int) -> Iterator[Callable[[], None]]:
    """A transient rich progress bar on rank 0; yields the per-step ``advance`` callback."""
    if not compute.ctx.is_main:
        yield lambda: None
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True, disable=not console.is_terminal) as bar:
        task = bar.add_task(label, total=total)
        yield lambda: bar.advance(task)


def _print_epoch(stage: str, epoch: int, epochs: int, metrics: dict[str, float], best: bool) -> None:
    """One aligned console line per epoch (a header line before the first)."""
    widths = [max(10, len(k) + 1) for k in metrics]
    if epoch == 1:
        header = "".join(f"{k:>{w}}" for k, w in zip(metrics, widths))
        console.print(f"[bold]{'stage':<9}{'epoch':>7}{header}[/bold]", soft_wrap=True)
    values = "".join(f"{v:>{w}.4g}" for v, w in zip(metrics.values(), widths))
    console.print(f"{stage:<9}{f'{epoch}/{epochs}':>7}{values}{'  best' if best else ''}", soft_wrap=True)


def _cpu_weights(model: nn.Module) -> dict[str, torch.Tensor]:
    """A CPU copy of ``model``'s weights (the best epoch's, kept aside)."""
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
