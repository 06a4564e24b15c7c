"""End-to-end benchmark of ``memgaze-run``: FPS and per-stage latency of the real pipeline on a video
file (or image folder), against the raw engine latency of the same backend on the same frames.

The pipeline runs exactly as ``memgaze-run --headless`` does (capture thread, OpenCV resize, backend,
heatmap peak, a JSON-lines sink), then the backend alone is timed on the same preprocessed frames
in the same process. ``overhead`` = pipeline time per frame / raw engine time per frame: what the
runtime costs on top of the model.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Any

import numpy as np

from memgaze.bench.machine import describe_machine
from memgaze.bench.report import Block, Heading, Para, Table, plot_bars
from memgaze.bench.timing import summarize, time_interleaved
from memgaze.errors import fail
from memgaze.runtime.backends import open_backend
from memgaze.runtime.bundle import load_bundle
from memgaze.runtime.capture import Capture
from memgaze.runtime.pipeline import Pipeline, preprocess
from memgaze.runtime.sinks import JsonlSink
from memgaze.runtime.sources import Undecodable, open_source, parse_source
from memgaze.runtime.timing import STAGES

ENGINE_FRAMES = 16  # distinct preprocessed frames the raw engine is timed on, in turn


def _stage_stats(samples_s: np.ndarray) -> dict[str, float]:
    return summarize(samples_s * 1000.0) if samples_s.size else {}


def _engine_frames(source: str, size: tuple[int, int], count: int) -> list[np.ndarray]:
    """The first ``count`` frames of ``source``, preprocessed as the pipeline does."""
    frames = open_source(parse_source(None, source))
    batches: list[np.ndarray] = []
    try:
        while len(batches) < count:
            try:
                image = frames.read()
            except Undecodable:
                continue
            if image is None:
                break
            batches.append(preprocess(image, size))
    finally:
        frames.close()
    return batches


def run_pipeline_bench(
    model: Path, source: str, backend: str = "onnxruntime", precision: str | None = "int8",
    max_frames: int | None = None, threads: int | None = None, iters: int = 200, warmup: int = 10,
) -> dict[str, Any]:
    """Run the pipeline over ``source``, then time the bare engine; returns the ``pipeline.json`` document."""
    spec = parse_source(None, source)
    if spec.live:
        fail(f"--source {source}: use a video file or an image folder (a live source cannot be replayed for the engine)")
    bundle = load_bundle(model)
    user = bundle.user_index(None)
    with open_backend(bundle, backend, precision, threads=threads) as engine:
        capture = Capture(open_source(spec))
        summary = Pipeline(engine, capture, [JsonlSink(os.devnull)], user=user, max_frames=max_frames).run()
        if summary.frames == 0:
            fail(f"no frame could be scored from {source}")
        batches = _engine_frames(source, engine.input_size, ENGINE_FRAMES)
        users = None if user is None else np.array([user], np.int64)
        frames = itertools.cycle(batches)
        raw = time_interleaved({"engine": lambda: engine.infer(next(frames), users)}, iters, warmup)
        described = engine.describe()
    stages = {stage: _stage_stats(summary.timings.samples(stage)) for stage in STAGES}
    engine_stats = summarize(raw["engine"])
    per_frame_ms = 1000.0 / summary.fps
    return {
        "machine": describe_machine(),
        "settings": {"model": str(model), "source": source, "backend": described, "input_size": list(bundle.input_size),
                     "iters": iters, "warmup": warmup, "threads": threads},
        "pipeline": {"frames": summary.frames, "seconds": summary.seconds, "fps": summary.fps, "per_frame_ms": per_frame_ms,
                     "dropped": summary.dropped, "undecodable": summary.undecodable, "stages": stages},
        "engine": {**engine_stats, "fps": 1000.0 / engine_stats["mean_ms"]},
        "overhead": per_frame_ms / engine_stats["mean_ms"],
    }


def summary_line(result: dict[str, Any]) -> str:
    p, e = result["pipeline"], result["engine"]
    return (f"pipeline {p['fps']:.1f} FPS ({p['per_frame_ms']:.2f} ms/frame) vs engine alone {e['fps']:.1f} FPS "
            f"({e['mean_ms']:.2f} ms): runtime overhead ×{result['overhead']:.2f}")


def section(result: dict[str, Any], folder: Path) -> list[Block]:
    """Report blocks for a pipeline result; writes ``pipeline_stages.png`` into ``folder``."""
    s, p, e = result["settings"], result["pipeline"], result["engine"]
    stages = {name: stats for name, stats in p["stages"].items() if stats}
    plot_bars(list(stages), [stats["mean_ms"] for stats in stages.values()], folder / "pipeline_stages.png",
              "mean ms per frame", "memgaze-run per-stage latency")
    rows: list[list[Any]] = [[name, st["p50_ms"], st["p99_ms"], st["mean_ms"]] for name, st in stages.items()]
    rows.append(["engine alone (same frames)", e["p50_ms"], e["p99_ms"], e["mean_ms"]])
    return [
        Heading("End-to-end runtime"),
        Para(f"`memgaze-run --headless --jsonl` on {s['source']} with {s['backend']}, {p['frames']} frames at "
             f"{s['input_size'][0]}×{s['input_size'][1]}; then the backend alone on the same preprocessed frames "
             f"({s['iters']} calls after {s['warmup']} warm-up). A file is read at processing speed, so no frame is dropped."),
        Table(["stage", "p50 ms", "p99 ms", "mean ms"], rows),
        Table(["pipeline FPS", "ms / frame", "engine FPS", "overhead ×", "dropped", "undecodable"],
              [[p["fps"], p["per_frame_ms"], e["fps"], result["overhead"], p["dropped"], p["undecodable"]]]),
        Para("overhead = pipeline time per frame / engine time per call: capture (decoding), OpenCV resize, the heatmap "
             "peak and the JSON sink on top of the model."),
    ]
