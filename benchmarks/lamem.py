"""``memgaze-bench lamem``: LaMem's protocol. Spearman ρ, Pearson r and MSE on the test list of every
train/test split of a dataset in the LaMem layout, then their mean ± std over the splits, for memgaze's
teacher and student, the student trained without gaze imitation (the ablation), peers scored on the same
test images, and the published LaMem figures beside them.

Training (``--train``) and testing go through :mod:`memgaze.bench.protocol`; peers through
:mod:`memgaze.bench.peers`. The document is ``lamem.json``; :func:`section` renders it.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np

from memgaze.bench.anchors import ANCHORS
from memgaze.bench.machine import describe_machine
from memgaze.console import WarningCounter, console
from memgaze.errors import fail
from memgaze.layout import is_synthetic, list_folds, read_split

SCORE_KEYS = ("spearman", "pearson", "mse")
MAP_KEYS = ("cc_own_user", "cc_other_user", "cc_generic", "nss_own_user")


@dataclasses.dataclass(frozen=True)
class Request:
    """What one ``memgaze-bench lamem`` run does."""

    data: Path
    out: Path
    runs: Path
    folds: list[int] | None
    train: bool
    ablation: bool
    peers: list[str]
    device: str
    batch_size: int


def run_lamem(request: Request, cfg: Any) -> dict[str, Any]:
    """The ``lamem.json`` document; ``cfg`` (a ``TrainConfig``) holds the settings every split trains with."""
    from memgaze.bench.peers import score_peer
    from memgaze.bench.protocol import settings

    root = request.data
    folds = resolve_folds(root, request.folds)
    warnings = WarningCounter("protocol data")
    tests = {k: read_split(root, "test", k, warnings) for k in folds}
    rows = _memgaze_rows(request, cfg, tests, warnings)
    peers = []
    for spec in request.peers:
        described, peer_rows = score_peer(spec, root, tests, request.out / "peers", warnings)
        peers.append(described)
        rows += peer_rows
    if not rows:
        fail(f"nothing to evaluate: no runs in {request.runs} (give --train, or --runs with fold_<k>/ folders) and no --peer")
    rows = [{k: _defined(v) if isinstance(v, float) else v for k, v in row.items()} for row in rows]
    warnings.summary()
    for row in rows:
        rho, mse = (("–" if v is None else f"{v:.{d}f}") for v, d in ((row["spearman"], 3), (row["mse"], 4)))
        console.print(f"{row['model']}, split {row['fold']}: Spearman {rho}, MSE {mse}")
    return {
        "machine": describe_machine(),
        "rows": rows,
        "summary": summarize(rows),
        "ablation": ablation_deltas(rows),
        "peers": peers,
        "anchors": [dataclasses.asdict(anchor) for anchor in ANCHORS],
        "settings": {
            "data": str(root), "synthetic": is_synthetic(root), "folds": folds,
            "test_images": {str(k): len(v) for k, v in tests.items()}, "runs": str(request.runs),
            "trained_here": request.train, "ablation": request.ablation,
            "training": settings(cfg) if request.train else None, "std": "sample standard deviation over the splits (n - 1)",
        },
    }


def resolve_folds(root: Path, wanted: list[int] | None) -> list[int]:
    """The splits to run: ``wanted``, or every one ``ROOT/splits`` holds; one-line error for a missing one."""
    if not root.is_dir():
        fail(f"dataset root {root} is not a folder (give a dataset in the LaMem layout)")
    found = list_folds(root)
    if not found:
        fail(f"{root / 'splits'} holds no complete split (train_<k>.txt, val_<k>.txt and test_<k>.txt): "
             "expected the LaMem layout")
    missing = [k for k in wanted or [] if k not in found]
    if missing:
        fail(f"split {', '.join(map(str, missing))} not in {root / 'splits'} (it has {', '.join(map(str, found))})")
    return sorted(set(wanted)) if wanted else found


def _memgaze_rows(
    request: Request, cfg: Any, tests: dict[int, list[Any]], warnings: WarningCounter
) -> list[dict[str, Any]]:
    """Train (``--train``) and test memgaze's runs of every split; none when there are no runs at all."""
    from memgaze.bench.protocol import run_dir, score_run, train_split

    folds = list(tests)
    if request.train:
        for fold in folds:
            train_split(cfg, request.data, fold, request.runs)
            if request.ablation:
                train_split(cfg, request.data, fold, request.runs, gaze=False)
    elif not any(run_dir(request.runs, k).is_dir() for k in folds):
        if request.ablation:
            fail(f"--ablation needs runs: none in {request.runs} (add --train)")
        return []
    variants = [True, False] if request.ablation else [True]
    _require_checkpoints(request.runs, folds, variants)
    rows = []
    for fold in folds:
        for gaze in variants:
            kinds = ("teacher", "student") if gaze else ("student",)  # the no-gaze run shares the fold's teacher
            tested = score_run(run_dir(request.runs, fold, gaze), request.data, fold, device=request.device,
                               batch_size=request.batch_size, warnings=warnings, kinds=kinds)
            for kind, result in tested.items():
                rows.append({"model": _label(kind, result["architecture"], gaze), "kind": kind, "gaze": gaze,
                             "fold": fold, "images": len(tests[fold]),
                             **{k: v for k, v in result["metrics"].items() if k in SCORE_KEYS + MAP_KEYS}})
    return rows


def _require_checkpoints(runs: Path, folds: list[int], variants: list[bool]) -> None:
    from memgaze.train.checkpoint import run_checkpoint
    from memgaze.bench.protocol import run_dir

    absent = [str(path) for k in folds for gaze in variants for kind in ("teacher", "student")
              if not (path := run_checkpoint(run_dir(runs, k, gaze), kind)).is_file()]
    if absent:
        fail(f"missing checkpoint {absent[0]}" + (f" (and {len(absent) - 1} more)" if len(absent) > 1 else "")
             + ": train with --train, or memgaze-train --fold K --out RUNS/fold_K")


def _label(kind: str, architecture: dict[str, Any], gaze: bool) -> str:
    if kind == "teacher":
        return f"memgaze teacher ({architecture.get('arch', 'resnet50')})"
    backbone = architecture.get("backbone", "mobilenet_v3_small")
    return f"memgaze student ({backbone})" + ("" if gaze else ", no gaze imitation")


def _defined(value: float) -> float | None:
    """A metric for strict JSON: None where it is undefined (map metrics without gaze data are NaN)."""
    return value if math.isfinite(value) else None


def _finite(values: list[Any]) -> list[float]:
    return [float(v) for v in values if isinstance(v, (int, float)) and math.isfinite(v)]


def mean_std(values: list[Any]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (n − 1) of the finite values; None where undefined."""
    finite = _finite(values)
    if not finite:
        return None, None
    return float(np.mean(finite)), float(np.std(finite, ddof=1)) if len(finite) > 1 else None


def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per model, in the order the rows first name it: ``<metric>_mean`` / ``<metric>_std``."""
    models: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        models.setdefault(row["model"], []).append(row)
    summary = []
    for model, group in models.items():
        entry: dict[str, Any] = {"model": model, "kind": group[0]["kind"], "folds": [r["fold"] for r in group]}
        for key in SCORE_KEYS + MAP_KEYS:
            entry[f"{key}_mean"], entry[f"{key}_std"] = mean_std([r.get(key) for r in group])
        summary.append(entry)
    return summary


def ablation_deltas(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Per split, the student with gaze imitation minus the one without (same seed, split and teacher),
    and the mean ± std of those paired differences; None without the ablation."""
    students = {(r["fold"], r["gaze"]): r for r in rows if r["kind"] == "student"}
    folds = sorted(k for k, gaze in students if not gaze and (k, True) in students)
    if not folds:
        return None
    keys = ("spearman", "pearson", "mse", "cc_own_user", "nss_own_user")
    per_fold = []
    for fold in folds:
        with_gaze, without = students[(fold, True)], students[(fold, False)]
        entry: dict[str, Any] = {"fold": fold}
        for key in keys:
            pair = _finite([with_gaze.get(key), without.get(key)])
            entry[key] = {"gaze": with_gaze.get(key), "no_gaze": without.get(key),
                          "delta": pair[0] - pair[1] if len(pair) == 2 else None}
        per_fold.append(entry)
    means = {key: dict(zip(("mean", "std"), mean_std([e[key]["delta"] for e in per_fold]))) for key in keys}
    return {"folds": per_fold, "delta": means}
