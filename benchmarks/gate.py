"""``memgaze-bench gate``: how far each INT8 file of some bundles lands from FP32 on real frames, as the gate sees it.

For every bundle: FP32 (``model.onnx``) and each INT8 file are run on the same frames (the TensorRT Q/DQ file by exact
Q/DQ emulation, as the export judges it; the ONNX Runtime file as ONNX Runtime runs it); the gate's four figures are
computed on all frames and on many random subsets of :data:`memgaze.gate.MIN_SAMPLES` frames, the number a device
judges a plan on. :data:`memgaze.gate.RULE`'s thresholds are set below the worst subset of every good file, with a
margin; this report is where they come from.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from memgaze.bench.machine import describe_machine
from memgaze.bench.report import Block, Bullets, Heading, Para, Table
from memgaze.console import WarningCounter
from memgaze.errors import fail
from memgaze.export.calibration import FrameRef, read_frames
from memgaze.export.verify import inference_session, run_onnx
from memgaze.gate import MIN_SAMPLES, RULE, AccuracyReport, compare_outputs
from memgaze.media import list_media
from memgaze.runtime.bundle import load_bundle

FIGURES = ("spearman", "score_shift", "heatmap_cc", "heatmap_cc_min")
WORST = {"spearman": min, "score_shift": max, "heatmap_cc": min, "heatmap_cc_min": min}


def _figures(report: AccuracyReport) -> dict[str, float]:
    return {"spearman": report.spearman, "score_shift": report.score_shift, "heatmap_cc": report.heatmap_cc,
            "heatmap_cc_min": report.heatmap_cc_min}


def subset_figures(ref: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray], subsets: int,
                   seed: int) -> tuple[dict[str, list[float]], float]:
    """The gate's figures on ``subsets`` random draws of :data:`MIN_SAMPLES` frames, and the share of draws it passes."""
    rng = np.random.default_rng(seed)
    values: dict[str, list[float]] = {name: [] for name in FIGURES}
    passed = 0
    for _ in range(subsets):
        pick = rng.choice(len(ref[0]), size=min(MIN_SAMPLES, len(ref[0])), replace=False)
        report = compare_outputs((ref[0][pick], ref[1][pick]), (test[0][pick], test[1][pick]), "subset")
        for name, value in _figures(report).items():
            values[name].append(value)
        passed += report.passed
    return values, passed / subsets


def bundle_rows(label: str, path: Path, frames: np.ndarray, subsets: int, seed: int) -> list[dict[str, Any]]:
    """One row per INT8 file of the bundle at ``path``: figures on all frames, and their distribution over subsets."""
    bundle = load_bundle(path)
    users = np.zeros(len(frames), np.int64) if bundle.personalized else None
    ref = run_onnx(inference_session(path / bundle.manifest.models["fp32"]), frames, users)
    files = {bundle.manifest.models["int8"]: True, bundle.manifest.onnxruntime_cpu.get("int8", ""): False}
    rows = []
    for name, exact in files.items():
        if not name:
            continue
        test = run_onnx(inference_session(path / name, exact_qdq=exact), frames, users)
        whole = compare_outputs(ref, test, "frames")
        draws, share = subset_figures(ref, test, subsets, seed)
        rows.append({
            "bundle": label, "file": name, "run": "exact Q/DQ emulation" if exact else "ONNX Runtime CPU",
            "frames": len(frames), "all": _figures(whole), "passed_all": whole.passed, "subsets": subsets,
            "worst": {k: WORST[k](v) for k, v in draws.items()},
            "p5": {k: float(np.percentile(v, 95 if k == "score_shift" else 5)) for k, v in draws.items()},
            "median": {k: float(np.median(v)) for k, v in draws.items()}, "subsets_passed": share,
        })
    return rows


def run_gate(models: list[tuple[str, Path]], data: Path, subsets: int = 500, seed: int = 0) -> dict[str, Any]:
    """:func:`bundle_rows` for every ``(label, bundle)``, on the images of ``data`` resized to each bundle's input."""
    images, _ = list_media(data, "gate data")
    if len(images) < MIN_SAMPLES:
        fail(f"{data} has {len(images)} images; the gate's distribution needs at least {MIN_SAMPLES}")
    rows = []
    for label, path in models:
        size = load_bundle(path).input_size
        frames, _ = read_frames([FrameRef(p) for p in images], size, WarningCounter("gate data"))
        rows += bundle_rows(label, path, frames, subsets, seed)
    return {"machine": describe_machine(), "settings": {"data": str(data), "images": len(images), "subsets": subsets,
                                                      "subset_size": MIN_SAMPLES, "seed": seed, "rule": RULE.as_dict()},
            "rows": rows}


def section(result: dict[str, Any], folder: Path) -> list[Block]:
    """Report blocks: the worst subset of every file beside the rule's thresholds."""
    s, rule = result["settings"], result["settings"]["rule"]
    return [
        Heading("The accuracy gate: INT8 against FP32"),
        Para(f"Each INT8 file against its FP32 model on {s['images']} real frames of {s['data']}: the gate's figures on "
             f"all of them, and the worst (and 5th percentile) over {s['subsets']} random subsets of {s['subset_size']} "
             "frames, the number the device judges a plan on."),
        Table(["bundle", "file", "run", "Spearman (all / worst / p5)", "max |Δscore|/spread (all / worst / p95)",
               "heatmap CC (all / worst)", "worst frame's CC (all / worst)", "subsets passed"],
              [[r["bundle"], r["file"], r["run"],
                f"{r['all']['spearman']:.4f} / {r['worst']['spearman']:.4f} / {r['p5']['spearman']:.4f}",
                f"{r['all']['score_shift']:.3f} / {r['worst']['score_shift']:.3f} / {r['p5']['score_shift']:.3f}",
                f"{r['all']['heatmap_cc']:.4f} / {r['worst']['heatmap_cc']:.4f}",
                f"{r['all']['heatmap_cc_min']:.4f} / {r['worst']['heatmap_cc_min']:.4f}",
                f"{r['subsets_passed']:.1%}"] for r in result["rows"]]),
        Bullets([f"The rule (memgaze.gate.RULE): Spearman ≥ {rule['min_spearman']}, largest |Δscore| ≤ "
                 f"{rule['max_score_shift']} of the FP32 scores' standard deviation, mean heatmap CC ≥ "
                 f"{rule['min_heatmap_cc']}, worst frame's CC ≥ {rule['min_heatmap_cc_worst']}.",
                 "A threshold sits below the worst subset of every file here, with a margin, so a good file passes on "
                 "any 32 frames; a file that reorders scores, moves them by a large share of their spread, or wrecks "
                 "the maps does not."]),
    ]
