"""LaMem's evaluation protocol, one split at a time (the folds of ``memgaze-bench lamem``).

``RUNS/fold_<k>/`` is an ordinary ``memgaze-train --fold k --out RUNS/fold_<k>`` run; the run without
gaze imitation (``loss.student_gaze`` = 0, the ablation) sits in ``RUNS/fold_<k>/no-gaze/`` and shares
that fold's teacher, so the two students differ in that loss term alone (same seed, same split, same
teacher). :func:`train_split` trains what is missing and resumes what was interrupted;
:func:`score_run` scores the checkpoints of a run on the split's test list.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from memgaze.atomic import link_or_copy, write_json
from memgaze.console import WarningCounter, console
from memgaze.errors import fail
from memgaze.train.checkpoint import checkpoint_paths, load_checkpoint, run_checkpoint
from memgaze.train.compute import make_compute
from memgaze.train.config import OptimConfig, TrainConfig
from memgaze.train.distributed import setup
from memgaze.train.stages import run
from memgaze.train.stages.context import StageContext
from memgaze.train.stages.heldout import student_metrics, teacher_metrics

NO_GAZE = "no-gaze"
SETTINGS_FILE = "protocol.json"
# run-wide keys that may differ between folds without changing what a fold's models are
_NOT_SETTINGS = ("data", "out", "fold", "stage", "resume", "device", "workers", "cache")


def run_dir(runs: Path, fold: int, gaze: bool = True) -> Path:
    """``RUNS/fold_<k>`` (with gaze imitation) or ``RUNS/fold_<k>/no-gaze`` (without)."""
    folder = runs / f"fold_{fold}"
    return folder if gaze else folder / NO_GAZE


def without_gaze(cfg: TrainConfig) -> TrainConfig:
    """The same settings with the student's gaze-imitation term switched off."""
    return dataclasses.replace(cfg, loss=dataclasses.replace(cfg.loss, student_gaze=0.0))


def settings(cfg: TrainConfig) -> dict[str, Any]:
    """What must be equal in every fold of one protocol run."""
    values = cfg.to_dict()
    for key in _NOT_SETTINGS:
        values.pop(key)
    return values


def train_split(cfg: TrainConfig, root: Path, fold: int, runs: Path, gaze: bool = True) -> Path:
    """Train teacher and student on split ``fold`` of ``root`` into :func:`run_dir` (only the student
    without gaze, beside the fold's teacher, when ``gaze`` is false); a finished run is kept, an
    interrupted one resumed. One-line error when the folder holds a run made with other settings."""
    out = run_dir(runs, fold, gaze)
    chosen = cfg if gaze else without_gaze(cfg)
    wanted = settings(chosen)
    _check_settings(out, fold, wanted)
    if run_checkpoint(out, "student").is_file() and run_checkpoint(out, "teacher").is_file():
        console.print(f"split {fold}{'' if gaze else ' (no gaze imitation)'}: trained already in {out}")
        return out
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / SETTINGS_FILE, wanted)
    if not gaze:
        _share_teacher(run_dir(runs, fold), out)
    stage = "all" if gaze and not run_checkpoint(out, "teacher").is_file() else "student"
    console.print(f"split {fold}{'' if gaze else ' (no gaze imitation)'}: training ({stage}) into {out}")
    run(dataclasses.replace(chosen, data=str(root), out=str(out), fold=fold, stage=stage, resume=True))
    return out


def _check_settings(out: Path, fold: int, wanted: dict[str, Any]) -> None:
    path = out / SETTINGS_FILE
    if not path.is_file():
        if run_checkpoint(out, "student").is_file():
            fail(f"{out} holds a run that memgaze-bench lamem did not start (no {SETTINGS_FILE}); "
                 "evaluate it without --train, or train into another --runs folder")
        return
    try:
        found = json.loads(path.read_text())
    except (OSError, ValueError):
        found = None
    if found != wanted:
        differ = sorted(k for k in set(wanted) | set(found or {}) if (found or {}).get(k) != wanted.get(k))
        fail(f"split {fold} in {out} was trained with other settings ({', '.join(differ) or 'unreadable'}): "
             "every split must use the same ones; use another --runs folder or remove that one")


def _share_teacher(source: Path, out: Path) -> None:
    """Link (or copy) the fold's teacher checkpoint into the no-gaze run."""
    for name in (p.name for p in checkpoint_paths(run_checkpoint(source, "teacher"))):
        target = out / name
        if target.is_file():
            continue
        if not (source / name).is_file():
            fail(f"no teacher in {source}: train the split with gaze imitation first")
        link_or_copy(source / name, target)


def score_run(
    run: Path, root: Path, fold: int, *, device: str, batch_size: int, warnings: WarningCounter,
    kinds: tuple[str, ...] = ("teacher", "student"),
) -> dict[str, dict[str, Any]]:
    """``{kind: {"architecture", "metrics"}}`` of the ``kinds`` checkpoints in ``run`` on the test list of
    split ``fold`` (:mod:`memgaze.train.stages.heldout`); a model whose checkpoint is absent is left out."""
    compute = make_compute(setup(device), "auto", None, 0)
    results: dict[str, dict[str, Any]] = {}
    for kind in kinds:
        path = run_checkpoint(run, kind)
        if not path.is_file():
            continue
        model, config = load_checkpoint(path, expect_kind=kind)
        model = compute.prepare(model)
        ctx = StageContext(
            compute=compute, out=run, root=root, synthetic=False, fold=fold, image_size=int(config["input_size"][0]),
            batch_size=batch_size, seed=0, cache=False, resume=False, optim=OptimConfig(), warnings=warnings, log=None,
        )
        metrics = teacher_metrics(ctx, model) if kind == "teacher" else student_metrics(ctx, model, list(config["users"]))
        results[kind] = {"architecture": config["architecture"], "metrics": metrics}
    return results
