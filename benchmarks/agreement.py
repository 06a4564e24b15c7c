"""``memgaze-bench agreement``: how well students rank unlabelled photos the way a reference model does.

For each bundle and each of its ONNX models (FP32; INT8 as ONNX Runtime runs it on this CPU; the
TensorRT Q/DQ INT8 in exact emulation), the Spearman ρ, Pearson r and pairwise ranking accuracy of
its scores against the reference model's (ResMem by default) on the photos of ``DATA/images/``.
The reference's scores are cached beside the photos (keyed by model and file contents), so a rerun
only runs the students. Agreement with a model, not accuracy on human memorability.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

from memgaze.bench.machine import describe_machine
from memgaze.bench.report import Block, Bullets, Heading, Para, Table
from memgaze.console import WarningCounter, console
from memgaze.errors import fail

BATCH = 8


def parse_models(specs: list[str]) -> list[tuple[str, Path]]:
    """``LABEL=BUNDLE`` (or a bare ``BUNDLE``, labelled by its folder) → (label, path)."""
    models = []
    for spec in specs:
        label, _, path = spec.rpartition("=")
        models.append((label or Path(path).parent.name or path, Path(path)))
    return models


def _frames(root: Path) -> tuple[list[str], list[np.ndarray]]:
    from memgaze.media import list_media

    images, _ = list_media(root / "images", "--data images folder", skip=None)
    if len(images) < 3:
        fail(f"{root / 'images'} needs at least 3 photos to rank, found {len(images)}")
    names, frames = [], []
    for path in images:
        frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if frame is None:
            fail(f"cannot decode {path}")
        names.append(path.relative_to(root / "images").as_posix())
        frames.append(frame)
    return names, frames


def _scores(run: Any, frames: list[np.ndarray], size: tuple[int, int]) -> np.ndarray:
    from memgaze.media import resize_frame

    out = []
    for start in range(0, len(frames), BATCH):
        batch = np.stack([resize_frame(f, size) for f in frames[start : start + BATCH]])
        out.append(run(batch))
    return np.concatenate(out).astype(np.float64)


def _model_runs(bundle: Any) -> list[tuple[str, str, Any]]:
    """(precision label, file, scoring function on a uint8 NHWC batch) for every ONNX model of the bundle."""
    from memgaze.export.verify import run_onnx, session
    from memgaze.runtime.backends.onnxruntime_backend import OnnxRuntimeBackend

    users = (lambda n: np.zeros(n, np.int64)) if bundle.personalized else (lambda n: None)
    runs: list[tuple[str, str, Any]] = []
    for precision in sorted(bundle.onnx_precisions, key=lambda p: p != "fp32"):  # FP32 first
        backend = OnnxRuntimeBackend(bundle, precision)
        runs.append((f"{precision} (ONNX Runtime CPU)" if precision == "int8" else precision, backend.model_file,
                     lambda x, b=backend: b.infer(x, users(len(x)))[0]))
        if precision == "int8":
            path, _ = bundle.onnx_model("int8")
            if path.name != backend.model_file:
                sess = session(path, exact_qdq=True)
                runs.append(("int8 (TensorRT Q/DQ, exact emulation)", path.name,
                             lambda x, s=sess: run_onnx(s, x, users(len(x)))[0]))
    return runs


def run_agreement(models: list[tuple[str, Path]], data: Path, reference: str = "resmem") -> dict[str, Any]:
    """The ``agreement.json`` document: one row per (bundle, ONNX model)."""
    from memgaze.runtime.bundle import load_bundle
    from memgaze.train import metrics
    from memgaze.train.external_teacher import open_teacher
    from memgaze.train.label_free import teacher_scores

    names, frames = _frames(data)
    teacher = open_teacher(reference)
    warnings = WarningCounter("agreement photos")
    ref, cached = teacher_scores(teacher, data, names, warnings)
    warnings.summary()
    rows = []
    for label, path in models:
        bundle = load_bundle(path)
        for precision, file, run in _model_runs(bundle):
            pred = _scores(run, frames, bundle.input_size)
            rows.append({"model": label, "bundle": str(path), "precision": precision, "file": file,
                         "input": list(bundle.input_size), "spearman": metrics.spearman(pred, ref),
                         "pearson": metrics.pearson(pred, ref), "pairwise": metrics.pairwise_accuracy(pred, ref),
                         "score_std": float(pred.std())})
            console.print(f"{label} {precision}: Spearman {rows[-1]['spearman']:.3f}, pairwise {rows[-1]['pairwise']:.3f} "
                          f"vs {teacher.name}")
    return {
        "machine": describe_machine(),
        "rows": rows,
        "settings": {"data": str(data), "images": len(names), "reference": teacher.describe(),
                     "reference_cached": cached, "reference_score_std": float(np.std(ref))},
    }


def section(result: dict[str, Any], folder: Path) -> list[Block]:
    """Report blocks for an agreement result."""
    s = result["settings"]
    return [
        Heading("Agreement with a reference model"),
        Para(f"Scores of each model on {s['images']} photos of {s['data']} against {s['reference']} "
             f"(reference score std {s['reference_score_std']:.3f}). Pairwise = share of photo pairs ordered like "
             "the reference (0.5 is chance)."),
        Table(["model", "precision", "file", "input", "Spearman ρ", "Pearson r", "pairwise", "score std"],
              [[r["model"], r["precision"], r["file"], "x".join(map(str, r["input"])), r["spearman"], r["pearson"],
                r["pairwise"], r["score_std"]] for r in result["rows"]]),
        Bullets(["Agreement with a model is not accuracy on human memorability: on LaMem, published models reach "
                 "ρ 0.64–0.72 with human scores, and humans agree with each other at ρ 0.68."]),
    ]
