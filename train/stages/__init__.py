"""The stages of ``memgaze-train``, one function each with explicit inputs, and :func:`run`, which
chains them: teacher → student, label-free (an external model teaches the student), personalize.

Where to start reading: :func:`run` builds a :class:`~memgaze.train.stages.context.StageContext`
(compute setup, data root, run-wide settings), calls the stages in order, saves what each returns
and keeps ``metrics.json`` up to date through one :class:`~memgaze.train.stages.record.MetricsRecord`.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from memgaze.console import WarningCounter, console
from memgaze.errors import fail
from memgaze.layout import is_synthetic
from memgaze.train.checkpoint import run_checkpoint
from memgaze.train.compute import make_compute, use_deterministic
from memgaze.train.config import TrainConfig
from memgaze.train.curves import MetricLog
from memgaze.train.distributed import DistContext, barrier, cleanup, main_first, setup
from memgaze.train.loop import saved_states
from memgaze.train.stages.context import StageContext, save_outcome
from memgaze.train.stages.distil_external import distil_from_external, open_external
from memgaze.train.stages.personalize import personalize
from memgaze.train.stages.record import MetricsRecord
from memgaze.train.stages.student import resnet_teacher, train_student
from memgaze.train.stages.teacher import train_teacher

__all__ = ["run"]


def run(cfg: TrainConfig, user: str | None = None, gaze: Path | None = None) -> None:
    """Run ``cfg.stage`` (``all`` = teacher then student) and update ``OUT/metrics.json``."""
    dist = setup(cfg.device)
    try:
        out = _prepare_out(Path(cfg.out), dist)
        use_deterministic(dist.device, cfg.deterministic)
        compute = make_compute(dist, cfg.amp, cfg.workers, cfg.seed)
        external = open_external(cfg.label_free, compute) if cfg.label_free.teacher_model is not None else None
        if dist.is_main:
            console.print(compute.describe(), soft_wrap=True)
        root, synthetic = _resolve_data(cfg, out, dist)
        assert cfg.image_size is not None and cfg.epochs_teacher is not None and cfg.epochs_student is not None
        ctx = StageContext(
            compute=compute, out=out, root=root, synthetic=synthetic,
            fold=cfg.fold, image_size=cfg.image_size, batch_size=cfg.batch_size, seed=cfg.seed,
            cache=(dist.device.type == "cuda") if cfg.cache is None else cfg.cache, resume=cfg.resume,
            optim=cfg.optim, warnings=WarningCounter("data"), log=MetricLog(out, cfg.resume) if dist.is_main else None,
            augmentation=cfg.augment,
        )
        if cfg.resume and ctx.main and not saved_states(out):
            console.print(f"[yellow]warning:[/yellow] --resume: {out} holds no training state to resume; training from scratch",
                          soft_wrap=True)
        record = MetricsRecord.load(out)
        if external is not None:
            if cfg.stage == "all" and ctx.main:
                console.print("label-free: the external model is the teacher, so only the student stage runs")
            distilled = distil_from_external(ctx, external, cfg.label_free, epochs=cfg.epochs_student, loss=cfg.loss,
                                             backbone=cfg.student_backbone)
            record.forget("teacher", "macs_ratio")  # an earlier run's ResNet teacher did not teach this student
            record.set("student", save_outcome(distilled.context, distilled.student, distilled.teacher))
            record.set("distillation", distilled.report)
            ctx = distilled.context
        else:
            if cfg.stage in ("teacher", "all"):
                teacher = train_teacher(ctx, epochs=cfg.epochs_teacher, backbone_weights=cfg.backbone_weights, loss=cfg.loss,
                                        arch=cfg.teacher_arch)
                record.set("teacher", save_outcome(ctx, teacher))
            if cfg.stage in ("student", "all"):
                student = train_student(ctx, epochs=cfg.epochs_student, targets=resnet_teacher(run_checkpoint(out, "teacher"), ctx.compute),
                                        loss=cfg.loss, backbone=cfg.student_backbone)
                record.set("student", save_outcome(ctx, student))
        if cfg.stage == "personalize":
            assert user is not None and gaze is not None
            record.set_user(user, personalize(ctx, user, gaze, cfg.personalize, cfg.loss.cc))
        if ctx.main:
            record.write(ctx.root, ctx.synthetic, ctx.fold, ctx.warnings)
            ctx.warnings.summary()
            if ctx.log is not None:
                ctx.log.close()
    finally:
        cleanup()


def _prepare_out(out: Path, dist: DistContext) -> Path:
    """Create ``out`` and check it is writable; one-line error otherwise."""
    if dist.is_main:
        try:
            out.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=out, prefix=".write-test"):
                pass
        except OSError as exc:
            fail(f"cannot write to --out {out}: {exc.strerror or exc}")
    barrier(dist)
    return out


def _resolve_data(cfg: TrainConfig, out: Path, dist: DistContext) -> tuple[Path, bool]:
    """The dataset root; ``demo`` generates a synthetic one under ``OUT/demo-data`` (once)."""
    if cfg.data == "demo":
        root = out / "demo-data"
        with main_first(dist):
            if dist.is_main:
                if not (root / "splits").is_dir():
                    from memgaze.train.data.demo import make_demo_dataset

                    demo = cfg.demo
                    console.print(f"generating a SYNTHETIC demo dataset ({demo.count} images, {demo.users} users) in {root}")
                    make_demo_dataset(root, demo.count, demo.image_size, demo.users, cfg.seed)
                console.print(f"training on SYNTHETIC demo data: {root} (scores and gaze are simulated)")
        return root, True
    root = Path(cfg.data)
    if not root.is_dir():
        fail(f"--data {root} is not a folder (give a dataset root in the LaMem layout, or 'demo')")
    synthetic = is_synthetic(root)
    if synthetic and dist.is_main:
        console.print(f"training on SYNTHETIC demo data: {root}")
    return root, synthetic
