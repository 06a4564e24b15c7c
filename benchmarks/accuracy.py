"""Accuracy of each ONNX precision in a bundle (ONNX Runtime) against ground truth, INT8-vs-FP32
agreement, and the accuracy–latency trade-off plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

from memgaze.bench.latency import run_latency, source_checkpoint
from memgaze.bench.machine import describe_machine
from memgaze.bench.report import Block, Bullets, Figure, Heading, Para, Table, plot_scatter
from memgaze.console import WarningCounter, console
from memgaze.errors import fail
from memgaze.manifest import Manifest

BATCH = 16
QUICK_ITERS = 30
MAP_METRICS = ("cc", "nss", "kld", "sim", "auc_judd")


def resolve_data(data: str, bundle_manifest: Manifest, bundle: Path, out: Path) -> Path:
    """The dataset root: ``data`` itself, or for ``demo`` the demo data the bundle was trained on
    (``demo-data`` beside its source checkpoint) or, failing that, a fresh demo set in ``out``."""
    if data != "demo":
        root = Path(data)
        if not root.is_dir():
            fail(f"dataset root {root} does not exist (give a LaMem-layout folder or 'demo')")
        return root
    source = source_checkpoint(bundle_manifest, bundle)
    if source is not None and (source.parent / "demo-data" / "splits").is_dir():
        return source.parent / "demo-data"
    root = out / "demo-data"
    if not (root / "splits").is_dir():
        from memgaze.train.config import TrainConfig
        from memgaze.train.data.demo import make_demo_dataset

        cfg = TrainConfig()
        console.print(f"generating the synthetic demo dataset in {root}")
        make_demo_dataset(root, cfg.demo.count, cfg.demo.image_size, cfg.demo.users, cfg.seed)
    return root


def load_split(root: Path, split: str, fold: int, size: tuple[int, int], map_size: tuple[int, int],
               limit: int | None, warnings: WarningCounter) -> dict[str, Any]:
    """Frames resized as the runtime does, ground-truth scores, and generic gaze maps/fixations.

    The generic map of an image is the mean of its users' maps; its fixations the union of theirs.
    """
    from memgaze.media import resize_frame
    from memgaze.layout import read_split
    from memgaze.train.data.gaze import GazeStore

    items = read_split(root, split, fold, warnings)[:limit]
    gaze = GazeStore(root, map_size, warnings=warnings)
    frames, scores, maps, fixations, names = [], [], [], [], []
    for item in items:
        image = cv2.imread(str(item.path), cv2.IMREAD_COLOR)
        if image is None:
            warnings.warn("unreadable image", f"cannot read {item.path}; skipped")
            continue
        user_maps = [m for u in gaze.users_for(item.name) if (m := gaze.heatmap(u, item.name)) is not None]
        user_fix = [f for u in gaze.users_for(item.name) if (f := gaze.fixations(u, item.name)) is not None]
        frames.append(resize_frame(image, size))
        scores.append(item.score)
        maps.append(np.mean(user_maps, axis=0) if user_maps else None)
        fixations.append(np.logical_or.reduce(user_fix) if user_fix else None)
        names.append(item.name)
    if not frames:
        fail(f"{root}: no readable image in split {split}_{fold}")
    return {"frames": np.stack(frames), "scores": np.asarray(scores, np.float64), "maps": maps,
            "fixations": fixations, "names": names}


def predict(backend: Any, frames: np.ndarray, users: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Scores ``[N]`` and heatmaps ``[N,1,h,w]`` of ``backend`` over ``frames`` in batches."""
    scores, maps = [], []
    for start in range(0, len(frames), BATCH):
        chunk = frames[start:start + BATCH]
        s, m = backend.infer(chunk, None if users is None else users[: len(chunk)])
        scores.append(s)
        maps.append(m)
    return np.concatenate(scores).astype(np.float64), np.concatenate(maps)


def map_scores(heatmaps: np.ndarray, maps: list[np.ndarray | None],
               fixations: list[np.ndarray | None]) -> dict[str, float | int | None]:
    """Mean CC/KLD/SIM against the generic gaze maps, NSS/AUC-Judd against their fixations, over
    the images that have gaze data (``memgaze.metrics``); None where there is none."""
    from memgaze import metrics

    keep = [i for i, m in enumerate(maps) if m is not None]
    out: dict[str, float | int | None] = {k: None for k in MAP_METRICS}
    if keep:
        h, w = heatmaps.shape[-2:]
        blank = np.zeros((h, w), bool)
        fix = np.stack([f if (f := fixations[i]) is not None else blank for i in keep])
        kept_maps = np.stack([m for m in maps if m is not None])
        out.update(metrics.map_metrics(heatmaps[keep, 0], kept_maps, fix))
    out["images_with_maps"] = len(keep)
    return out


def _latencies(bundle: Path, precisions: list[str], out: Path) -> tuple[dict[str, float], str]:
    """p50 ms of the student on ONNX Runtime at batch 1 per precision: from ``out/latency.json``
    when it has them, else measured quickly here."""
    from memgaze.bench.latency import load_result

    found: dict[str, float] = {}
    result = load_result(out / "latency.json")
    if result:
        for row in result["rows"]:
            if (row.get("model", "student"), row["backend"], row["batch"]) == ("student", "onnxruntime", 1):
                found[row["precision"]] = row["p50_ms"]
    if all(p in found for p in precisions):
        return found, f"{out / 'latency.json'}"
    quick = run_latency(bundle, ["onnxruntime"], precisions, [1], iters=QUICK_ITERS, warmup=5, rounds=3)
    return {r["precision"]: r["p50_ms"] for r in quick["rows"]}, f"measured here ({QUICK_ITERS} calls, batch 1)"


def run_accuracy(bundle_path: Path, data: str, split: str = "test", fold: int = 1, limit: int | None = None,
                 out: Path = Path("runs/bench")) -> dict[str, Any]:
    """Evaluate every ONNX precision of the bundle; the ``accuracy.json`` document (see README)."""
    from memgaze.gate import compare_outputs
    from memgaze.runtime.backends import open_backend
    from memgaze.runtime.bundle import load_bundle
    from memgaze import metrics

    if limit is not None and limit < 1:
        fail("--limit must be >= 1")
    bundle = load_bundle(bundle_path)
    root = resolve_data(data, bundle.manifest, bundle.root, out)
    warnings = WarningCounter("accuracy data")
    loaded = load_split(root, split, fold, bundle.input_size, bundle.map_size, limit, warnings)
    warnings.summary()
    users = np.zeros(BATCH, np.int64) if bundle.personalized else None
    precisions = bundle.onnx_precisions
    outputs: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    rows = []
    for precision in precisions:
        with open_backend(bundle, "onnxruntime", precision) as backend:
            outputs[precision] = predict(backend, loaded["frames"], users)
        rows.append({"model": "student", "backend": "onnxruntime", "precision": precision,
                     "images": len(loaded["scores"]), "score_std": float(outputs[precision][0].std()),
                     **metrics.score_metrics(outputs[precision][0], loaded["scores"]),
                     **map_scores(outputs[precision][1], loaded["maps"], loaded["fixations"])})
        console.print(f"{precision}: Spearman {rows[-1]['spearman']:.3f} on {len(loaded['scores'])} images")
    agreement = [
        {"candidate": p, "reference": "fp32", **compare_outputs(outputs["fp32"], outputs[p], "bench").as_dict()}
        for p in precisions if p != "fp32" and "fp32" in outputs
    ]
    for entry in agreement:  # keep the measurements, drop the export gate's bookkeeping
        for key in ("source", "threshold", "passed", "ground_truth"):
            entry.pop(key, None)
    latency, latency_source = _latencies(bundle_path, precisions, out)
    for row in rows:
        row["p50_ms"] = latency.get(str(row["precision"]))
    return {
        "machine": describe_machine(),
        "rows": rows,
        "agreement": agreement,
        "settings": {"bundle": str(bundle_path), "data": str(root), "synthetic": data == "demo", "split": split,
                     "fold": fold, "images": len(loaded["scores"]), "latency_source": latency_source},
    }


def section(result: dict[str, Any], folder: Path) -> list[Block]:
    """Report blocks for an accuracy result; writes ``accuracy_latency.png`` into ``folder``."""
    s = result["settings"]
    rows = result["rows"]
    blocks: list[Block] = [
        Heading("Accuracy"),
        Para(f"Student on ONNX Runtime, {s['images']} images of {s['data']} split {s['split']}_{s['fold']}"
             + (" (synthetic demo data: these numbers say the pipeline works, not how good the model is)"
                if s["synthetic"] else "")
             + ". Scores vs ground truth; maps vs the generic gaze map (mean of the users' maps; "
               "NSS and AUC-Judd vs the union of their fixations)."),
        Table(["precision", "Spearman ρ", "Pearson r", "MSE", "score std", "CC", "NSS", "KLD", "SIM", "AUC-Judd",
               "p50 ms"],
              [[r["precision"], r["spearman"], r["pearson"], r["mse"], r.get("score_std"), r["cc"], r["nss"], r["kld"],
                r["sim"], r["auc_judd"], r["p50_ms"]] for r in rows]),
        Para("score std = spread of the predicted scores; when it is tiny, rank correlations between precisions "
             "are dominated by differences far below any useful resolution (compare mean |Δscore|)."),
    ]
    if result["agreement"]:
        blocks += [
            Heading("Agreement with FP32", 3),
            Table(["precision", "score Spearman vs FP32", "mean |Δscore|", "max |Δscore|", "heatmap CC (mean)",
                   "heatmap CC (min)"],
                  [[a["candidate"], a["spearman"], a["mean_abs_score_diff"], a["max_abs_score_diff"],
                    a["heatmap_cc"], a["heatmap_cc_min"]] for a in result["agreement"]]),
        ]
    points = [(r["precision"], r["p50_ms"], r["spearman"]) for r in rows if r["p50_ms"] is not None]
    if points:
        plot_scatter(points, folder / "accuracy_latency.png", "latency p50, batch 1 (ms)",
                     "Spearman ρ vs ground truth", "Accuracy vs latency (student, ONNX Runtime)")
        blocks += [Figure("accuracy_latency.png", f"Accuracy vs latency; latency from {s['latency_source']}")]
    missing = [r["precision"] for r in rows if r["p50_ms"] is None]
    if missing:
        blocks.append(Bullets([f"{p}: no latency measured, left out of the plot" for p in missing]))
    return blocks
