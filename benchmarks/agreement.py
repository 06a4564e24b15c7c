"""``memgaze-bench agreement``: how well students rank unlabelled photos, and map them, the way a reference
model does.

For each bundle and each of its ONNX models (FP32; INT8 as ONNX Runtime runs it on this CPU; the
TensorRT Q/DQ INT8 in exact emulation), the Spearman ρ (with its 95% bootstrap interval over the photos),
Pearson r and pairwise ranking accuracy of its scores against the reference model's (ResMem by default)
on the photos of ``DATA/images/``, and,
where the reference has a map (ResMem: Grad-CAM of its score), the mean CC of the student's generic
heatmap with it, next to the best centred Gaussian's (the centre-bias baseline). The reference's
outputs are cached (keyed by model and file contents), so a rerun only runs the students. Agreement
with a model, not accuracy on human memorability; a map of what drives a model's score, not gaze.
``agreement.json`` keeps every model's score of every photo beside the reference's, so that models (seeds,
variants) can be compared photo by photo from the files alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

from memgaze.bench.machine import describe_machine
from memgaze.bench.report import Block, Bullets, Heading, Para, Table
from memgaze.builtin import resolve
from memgaze.console import WarningCounter, console
from memgaze.correlation import pearson, pearson_rows, spearman, spearman_interval
from memgaze.errors import fail

BATCH = 8
SIGMAS = (0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5)  # centred-Gaussian baseline: sigma / shorter side


def parse_models(specs: list[str]) -> list[tuple[str, Path]]:
    """``LABEL=BUNDLE`` (or a bare ``BUNDLE``, labelled by its folder) → (label, path); BUNDLE may be a built-in
    model's name."""
    models = []
    for spec in specs:
        label, _, path = spec.rpartition("=")
        models.append((label or Path(path).parent.name or path, resolve(path)))
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


def _outputs(run: Any, frames: list[np.ndarray], size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Scores ``[n]`` (float64) and heatmaps ``[n, 1, h, w]`` of a model on ``frames`` resized to its input."""
    from memgaze.media import resize_frame

    scores, maps = [], []
    for start in range(0, len(frames), BATCH):
        batch = np.stack([resize_frame(f, size) for f in frames[start : start + BATCH]])
        score, heat = run(batch)
        scores.append(score)
        maps.append(heat)
    return np.concatenate(scores).astype(np.float64), np.concatenate(maps)


def reference_maps(maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The reference's maps ``[n, h', w']`` resized bilinearly (cell centres aligned) to ``size``: ``[n, 1, h, w]``."""
    return np.stack([cv2.resize(m.astype(np.float32), (size[1], size[0]), interpolation=cv2.INTER_LINEAR) for m in maps])[:, None]


def centred_gaussian(size: tuple[int, int], sigma: float) -> np.ndarray:
    """An isotropic Gaussian at the centre of an ``[h, w]`` map, ``sigma`` as a fraction of the shorter side."""
    h, w = size
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    s = sigma * min(h, w)
    return np.exp(-(((x - (w - 1) / 2) ** 2) + ((y - (h - 1) / 2) ** 2)) / (2 * s * s))


def centre_baseline(targets: np.ndarray) -> tuple[float, float]:
    """The best centred Gaussian against ``targets`` ``[n, 1, h, w]``: (mean CC, its sigma) over a grid of sigmas."""
    best = max((float(pearson_rows(np.broadcast_to(centred_gaussian(targets.shape[2:], s), targets.shape), targets).mean()), s)
               for s in SIGMAS)
    return best


def _model_runs(bundle: Any) -> list[tuple[str, str, Any]]:
    """(precision label, file, (scores, heatmaps) function on a uint8 NHWC batch) for every ONNX model of the bundle."""
    from memgaze.export.verify import inference_session, run_onnx
    from memgaze.runtime.backends.onnxruntime_backend import OnnxRuntimeBackend

    users = (lambda n: np.zeros(n, np.int64)) if bundle.personalized else (lambda n: None)
    runs: list[tuple[str, str, Any]] = []
    for precision in sorted(bundle.onnx_precisions, key=lambda p: p != "fp32"):  # FP32 first
        backend = OnnxRuntimeBackend(bundle, precision)
        runs.append((f"{precision} (ONNX Runtime CPU)" if precision == "int8" else precision, backend.model_file,
                     lambda x, b=backend: b.infer(x, users(len(x)))))
        if precision == "int8":
            path, _ = bundle.onnx_model("int8")
            if path.name != backend.model_file:
                sess = inference_session(path, exact_qdq=True)
                runs.append(("int8 (TensorRT Q/DQ, exact emulation)", path.name,
                             lambda x, s=sess: run_onnx(s, x, users(len(x)))))
    return runs


def agreement_groups(data: Path | None, groups: Path | None) -> dict[str, dict[str, str]]:
    """The photos' groupings: ``groups`` (a ``groups.json``), else ``DATA/groups.json`` where there is one, else none."""
    from memgaze.bench.within_kind import GROUPS_FILE, read_groupings

    if groups is not None:
        if not groups.is_file():
            fail(f"--groups {groups} does not exist")
        return read_groupings(groups)
    found = data / GROUPS_FILE if data is not None else None
    return read_groupings(found) if found is not None and found.is_file() else {}


def score_agreement(pred: np.ndarray, reference: np.ndarray) -> dict[str, Any]:
    """How scores ``pred`` agree with the reference's: Spearman ρ with its 95% interval, Pearson r, pairwise accuracy,
    their spread, and the scores themselves (per photo, in the order of ``settings["photos"]``)."""
    from memgaze import metrics

    return {"spearman": spearman(pred, reference), "spearman_ci95": list(spearman_interval(pred, reference)),
            "pearson": pearson(pred, reference), "pairwise": metrics.pairwise_accuracy(pred, reference),
            "score_std": float(pred.std()), "scores": pred.tolist()}


def mirrored_reference(teacher: Any, frames: list[np.ndarray], ref: Any) -> dict[str, Any]:
    """The reference run on every photo mirrored left-right, against itself on the originals (its maps mirrored
    back): how much of its own order and map survive a change no viewer would notice. A model that imitates it
    cannot be expected to agree with it much more closely than that, inside a group or over all the photos."""
    scores, maps = [], []
    for start in range(0, len(frames), BATCH):
        output = teacher.predict([cv2.flip(frame, 1) for frame in frames[start : start + BATCH]])
        scores.append(output.scores)
        if output.maps is not None:
            maps.append(output.maps[:, :, ::-1])
    pred = np.concatenate(scores).astype(np.float64)
    row = {"model": f"{teacher.name}, photos mirrored", "bundle": "", "precision": "reference", "file": "", "input": [],
           **score_agreement(pred, ref.scores), "map_cc": None, "centre_cc": None}
    if maps and ref.maps is not None:
        row["map_cc"] = float(pearson_rows(np.concatenate(maps), ref.maps).mean())
    cc = f", map CC {row['map_cc']:.3f}" if row["map_cc"] is not None else ""
    console.print(f"{row['model']}: Spearman {row['spearman']:.3f} ({interval(row)}){cc} vs itself on the originals")
    return row


def run_agreement(models: list[tuple[str, Path]], data: Path, reference: str = "resmem",
                  groupings: dict[str, dict[str, str]] | None = None, mirrored: bool = False) -> dict[str, Any]:
    """The ``agreement.json`` document: one row per (bundle, ONNX model); with ``groupings``, each row's ρ inside
    every group of similar photos too (:mod:`memgaze.bench.within_kind`); with ``mirrored``, the reference's
    agreement with itself on the photos mirrored (:func:`mirrored_reference`), under ``reference_mirrored``."""
    from memgaze.bench.within_kind import add_within, scored_rows, summary_text

    from memgaze.runtime.bundle import load_bundle
    from memgaze.train.label_free.external_teacher import open_teacher
    from memgaze.train.label_free.unlabelled_frames import teacher_outputs

    names, frames = _frames(data)
    teacher = open_teacher(reference)
    warnings = WarningCounter("agreement photos")
    ref, cached = teacher_outputs(teacher, data, names, warnings)
    warnings.summary()
    rows, baselines = [], {}
    for label, path in models:
        bundle = load_bundle(path)
        targets = reference_maps(ref.maps, bundle.map_size) if ref.maps is not None else None
        if targets is not None and bundle.map_size not in baselines:
            baselines[bundle.map_size] = centre_baseline(targets)
        for precision, file, run in _model_runs(bundle):
            pred, heat = _outputs(run, frames, bundle.input_size)
            row = {"model": label, "bundle": str(path), "precision": precision, "file": file,
                   "input": list(bundle.input_size), **score_agreement(pred, ref.scores), "map_cc": None, "centre_cc": None}
            if targets is not None:
                row["map_cc"] = float(pearson_rows(heat, targets).mean())
                row["centre_cc"], row["centre_sigma"] = baselines[bundle.map_size]
            rows.append(row)
            maps_text = f", map CC {row['map_cc']:.3f} (centre {row['centre_cc']:.3f})" if targets is not None else ""
            console.print(f"{label} {precision}: Spearman {row['spearman']:.3f} ({interval(row)}), pairwise {row['pairwise']:.3f}{maps_text} "
                          f"vs {teacher.name}")
    result: dict[str, Any] = {
        "machine": describe_machine(),
        "rows": rows,
        "settings": {"data": str(data), "images": len(names), "reference": teacher.describe(),
                     "reference_map": "Grad-CAM of its score at layer4 (whole photo at 227x227)" if ref.maps is not None else None,
                     "reference_cached": cached, "reference_score_std": float(np.std(ref.scores)),
                     "photos": names, "reference_scores": ref.scores.tolist()},
    }
    if mirrored:
        result["reference_mirrored"] = mirrored_reference(teacher, frames, ref)
    if groupings:
        add_within(result, groupings)
        for row in scored_rows(result):
            console.print(f"{row['model']} {row['precision']}: {summary_text(row['within'])}", soft_wrap=True)
    return result


def interval(row: dict[str, Any]) -> str:
    """A row's 95% interval of ρ as text ("n/a" in rows written before memgaze recorded it)."""
    bounds = row.get("spearman_ci95")
    return f"{bounds[0]:.3f}–{bounds[1]:.3f}" if bounds else "n/a"


def section(result: dict[str, Any], folder: Path) -> list[Block]:
    """Report blocks for an agreement result."""
    from memgaze.bench import within_kind

    s, mirrored = result["settings"], result.get("reference_mirrored")
    return [
        Heading("Agreement with a reference model"),
        Para(f"Scores of each model on {s['images']} photos of {s['data']} against {s['reference']} "
             f"(reference score std {s['reference_score_std']:.3f}). Pairwise = share of photo pairs ordered like "
             "the reference (0.5 is chance)."),
        Table(["model", "precision", "file", "input", "Spearman ρ", "ρ 95% interval", "Pearson r", "pairwise",
               "score std", "map CC", "centred Gaussian CC"],
              [[r["model"], r["precision"], r["file"], "x".join(map(str, r["input"])), r["spearman"], interval(r),
                r["pearson"], r["pairwise"], r["score_std"], r.get("map_cc"), r.get("centre_cc")]
               for r in within_kind.scored_rows(result)]),
        Bullets([f"ρ 95% interval: where ρ could fall on another {s['images']} photos like these (percentile bootstrap, "
                 "the photos resampled 2000 times). Two models whose intervals overlap widely are not told apart "
                 "by this set.",
                 "Agreement with a model is not accuracy on human memorability: on LaMem, published models reach "
                 "ρ 0.64–0.72 with human scores, and humans agree with each other at ρ 0.68.",
                 f"Map CC: the student's generic heatmap against the reference's map ({s.get('reference_map') or 'none'}), "
                 "averaged over the photos; the centred Gaussian is the best of several widths against the same maps. "
                 "The reference's map shows what drives its predicted memorability; it is not where people look.",
                 *([f"{mirrored['model']}: the reference on every photo mirrored left-right against itself on the "
                    "originals (its maps mirrored back), how much of its own order survives a change no viewer would "
                    "notice; no model that imitates it can be expected to agree with it much more closely."]
                   if mirrored else [])]),
        *within_kind.section(result),
    ]
