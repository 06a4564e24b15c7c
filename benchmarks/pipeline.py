"""End-to-end benchmark of ``memgaze-run``: throughput against the slowest real stage, latency on a
paced (camera-like) source, and several sources batched into one model.

* **Throughput** (per file and ``--threads`` setting): the real pipeline (``Model.stream`` + a JSON-lines
  sink, as ``memgaze-run --headless --jsonl``: a file is scored in batches of ``MAX_BATCH`` frames), then, in the same process, decoding alone (the same
  file read by the same source class, no resize) and the engine alone (the same preprocessed frames).
  ``overhead_vs_bottleneck`` = pipeline ms/frame ÷ max(engine alone, decode alone): 1.0 means the
  runtime runs as fast as its slowest real stage allows. ``overhead`` (÷ engine alone) is kept too.
  Each file is measured in ``repeat`` rounds (pipeline, decode, engine, in turn); the round with the
  median ratio is reported, with the range. The process's CPU time during the pipeline gives its CPU
  ms per frame and utilisation; ``cpu_floor_vs_bottleneck`` is the lowest ratio the usable cores allow
  for these stage costs: (decode + resize + engine + post/sink, each as measured) ÷ cores ÷ bottleneck,
  or 1.0 when the cores have room. Above 1.0, no scheduling can reach the bottleneck's rate.
* **Paced source**: the file replayed at its own frame rate, looping, as a camera delivers frames
  (newest-frame policy). Capture-to-result latency p50/p99 against the engine's own, per time window.
* **Multi-source**: the same file opened N times (each with its own decoder), read as cameras are (``batch=None``):
  one engine call per batch of the newest frame of each; frames per second per source.
"""

from __future__ import annotations

import itertools
import os
import statistics
import time
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from memgaze.runtime.api import Model, load
from memgaze.trt.recipe import MAX_BATCH
from memgaze.bench.machine import describe_machine
from memgaze.bench.report import Block, Heading, Para, Table, plot_bars
from memgaze.bench.timing import summarize, time_interleaved
from memgaze.errors import fail
from memgaze.media import PRESCALE, resize_frame
from memgaze.runtime.pipeline import Pipeline, RunSummary, batch_of
from memgaze.runtime.prediction import Prediction
from memgaze.runtime.sinks import JsonlSink, Sink
from memgaze.runtime.sources import FrameSource, Undecodable, open_source, source_spec
from memgaze.runtime.timing import STAGES
from memgaze.system import usable_cores

ENGINE_FRAMES = 16  # distinct preprocessed frames the raw engine is timed on, in turn
WARM_FRAMES = 10  # results left out of the pipeline's steady-state rate (thread start, first engine calls)


def _stage_stats(samples_s: np.ndarray) -> dict[str, float]:
    return summarize(samples_s * 1000.0) if samples_s.size else {}


def _file_source(source: str) -> FrameSource:
    spec = source_spec(source)
    if spec.live:
        fail(f"--source {source}: use a video file or an image folder (a live source cannot be replayed for the engine)")
    return open_source(spec)


def decoded_frames(source: str, limit: int | None) -> Iterator[np.ndarray]:
    """The frames of a file or folder as the runtime's source class decodes them (undecodable ones skipped)."""
    frames = _file_source(source)
    count = 0
    try:
        while limit is None or count < limit:
            try:
                image = frames.read()
            except Undecodable:
                continue
            if image is None:
                return
            count += 1
            yield image
    finally:
        frames.close()


def decode_alone(source: str, max_frames: int | None) -> dict[str, float]:
    """Milliseconds per frame to read (decode) ``source`` with the runtime's own source class, nothing else."""
    start = time.perf_counter()
    count = sum(1 for _ in decoded_frames(source, max_frames))
    seconds = time.perf_counter() - start
    if count == 0:
        fail(f"no frame could be decoded from {source}")
    return {"frames": count, "mean_ms": seconds * 1000.0 / count, "fps": count / seconds}


def engine_alone(model: Model, source: str, iters: int, warmup: int) -> tuple[dict[str, float], str]:
    """The backend alone on the source's preprocessed frames (ms per call), and the frames' resolution."""
    images = list(decoded_frames(source, ENGINE_FRAMES))
    resolution = f"{images[0].shape[1]}x{images[0].shape[0]}"
    batches = [batch_of([resize_frame(image, model.input_size)]) for image in images]
    users = None if model.user is None else np.array([model.user], np.int64)
    frames = itertools.cycle(batches)
    raw = time_interleaved({"engine": lambda: model.backend.infer(next(frames), users)}, iters, warmup)
    stats = summarize(raw["engine"])
    return {**stats, "fps": 1000.0 / stats["mean_ms"]}, resolution


class RecordSink(Sink):
    """Keeps (seconds since start, capture-to-result ms, time written) of every prediction."""

    def __init__(self) -> None:
        self.rows: list[tuple[float, float, float]] = []

    def write(self, result: Prediction, annotated: np.ndarray | None) -> None:
        self.rows.append((result.t or 0.0, result.latency_ms or 0.0, time.perf_counter()))

    def steady_ms_per_frame(self, skip: int = WARM_FRAMES) -> float:
        """Milliseconds per frame between the ``skip``-th result and the last (start-up left out)."""
        done = [row[2] for row in self.rows]
        skip = min(skip, max(0, len(done) - 2))
        return (done[-1] - done[skip]) * 1000.0 / max(1, len(done) - 1 - skip)


def _run(model: Model, sources: Sequence[str] | Sequence[FrameSource], sinks: list[Sink], max_frames: int | None,
         batch: int | None = MAX_BATCH) -> RunSummary:
    """A memgaze-run loop over ``sources``; ``batch=None`` reads files as cameras are read (the newest frame of each
    source per engine call, in step) instead of in batches of files."""
    if sources and isinstance(sources[0], FrameSource):
        from memgaze.runtime.pipeline import Stream

        stream = Stream(model.backend, list(sources), user=model.user, max_frames=max_frames)  # type: ignore[arg-type]
    else:
        stream = model.stream(sources, max_frames=max_frames, batch=batch)  # type: ignore[arg-type]
    summary = Pipeline(stream, sinks).run()
    if summary.frames == 0:
        fail(f"no frame could be scored from {', '.join(map(str, sources))}")
    return summary


def python_work_ms(summary: RunSummary, statistic: str = "p50") -> float:
    """p50 (or mean) of the per-frame Python work on the inference thread: post + sinks (ms)."""
    post, sink = summary.timings.samples("post"), summary.timings.samples("sink")
    n = min(post.size, sink.size)
    if not n:
        return float("nan")
    work = post[:n] + sink[:n]
    return float((np.percentile(work, 50) if statistic == "p50" else work.mean()) * 1000.0)


def throughput_round(model: Model, source: str, max_frames: int | None, iters: int, warmup: int) -> dict[str, Any]:
    """One round on one file: the pipeline (with its process CPU time), then decode alone and engine alone."""
    record = RecordSink()
    cpu_start, wall_start = time.process_time(), time.perf_counter()
    summary = _run(model, [source], [JsonlSink(os.devnull), record], max_frames)
    cpu, wall = time.process_time() - cpu_start, time.perf_counter() - wall_start
    decode = decode_alone(source, max_frames)
    engine, resolution = engine_alone(model, source, iters, warmup)
    per_frame_ms = record.steady_ms_per_frame()
    bottleneck_ms = max(engine["mean_ms"], decode["mean_ms"])
    pre = summary.timings.samples("pre")
    stage_cpu_ms = decode["mean_ms"] + engine["mean_ms"] + (float(pre.mean()) * 1000.0 if pre.size else 0.0) \
        + python_work_ms(summary, "mean")
    cores = usable_cores()
    return {
        "resolution": resolution,
        "pipeline": {"frames": summary.frames, "seconds": summary.seconds, "fps": 1000.0 / per_frame_ms, "per_frame_ms": per_frame_ms,
                     "dropped": summary.dropped, "undecodable": summary.undecodable,
                     "cpu_ms_per_frame": cpu * 1000.0 / summary.frames, "cpu_utilisation": cpu / wall,
                     "stages": {stage: _stage_stats(summary.timings.samples(stage)) for stage in STAGES}},
        "python_work_p50_ms": python_work_ms(summary),
        "decode": decode, "engine": engine, "bottleneck": "decode" if decode["mean_ms"] >= engine["mean_ms"] else "engine",
        "overhead": per_frame_ms / engine["mean_ms"],
        "overhead_vs_bottleneck": per_frame_ms / bottleneck_ms,
        "cores": cores, "stage_cpu_ms": stage_cpu_ms,
        "cpu_floor_vs_bottleneck": max(stage_cpu_ms / cores, bottleneck_ms) / bottleneck_ms,
    }


def throughput_run(model: Model, source: str, threads: int | None, max_frames: int | None,
                   iters: int, warmup: int, repeat: int = 3) -> dict[str, Any]:
    """One file at one threads setting, ``repeat`` rounds: the round with the median ratio, and the range."""
    rounds = [throughput_round(model, source, max_frames, iters, warmup) for _ in range(max(1, repeat))]
    ratios = [r["overhead_vs_bottleneck"] for r in rounds]
    median = rounds[ratios.index(statistics.median_low(ratios))]
    return {"source": source, "threads": threads, **median, "rounds": len(rounds),
            "overhead_vs_bottleneck_range": [min(ratios), max(ratios)]}


class PacedSource(FrameSource):
    """A video file replayed at its own frame rate, looping, for ``seconds``: a camera, to the pipeline."""

    def __init__(self, source: str, seconds: float) -> None:
        self._inner = _file_source(source)
        super().__init__(self._inner.spec)
        self.rate = self._inner.fps if 0 < self._inner.fps < 1000 else 30.0
        self.seconds = seconds
        self._start: float | None = None
        self._count = 0

    @property
    def live(self) -> bool:
        return True

    @property
    def fps(self) -> float:
        return self.rate

    def read(self) -> np.ndarray | None:
        image = self._inner.read()
        if image is None:  # loop
            self._inner.close()
            self._inner.open()
            image = self._inner.read()
        now = time.perf_counter()
        if self._start is None:
            self._start = now
        due = self._start + self._count / self.rate
        if due - self._start >= self.seconds:
            return None
        if due > now:
            time.sleep(due - now)
        self._count += 1
        return image

    def close(self) -> None:
        self._inner.close()


def paced_run(model: Model, source: str, seconds: float, window: float, iters: int, warmup: int) -> dict[str, Any]:
    """Latency on the file replayed at its frame rate for ``seconds``, overall and per ``window`` seconds."""
    paced = PacedSource(source, seconds)
    sink = RecordSink()
    summary = _run(model, [paced], [sink], None)
    engine, _ = engine_alone(model, source, iters, warmup)
    t = np.array([r[0] for r in sink.rows])
    latency = np.array([r[1] for r in sink.rows])
    windows = []
    for start in np.arange(0.0, max(t.max(), window), window):
        chosen = latency[(t >= start) & (t < start + window)]
        if chosen.size:
            windows.append({"start_s": float(start), "frames": int(chosen.size), **summarize(chosen)})
    p50s = [w["p50_ms"] for w in windows]
    return {
        "source": source, "rate_fps": paced.rate, "seconds": summary.seconds, "frames": summary.frames,
        "fps": summary.fps, "dropped": summary.dropped, "latency": summarize(latency), "engine": engine,
        "latency_p50_vs_engine_p50": float(np.percentile(latency, 50)) / engine["p50_ms"],
        "window_s": window, "windows": windows,
        "window_p50_spread_ms": float(max(p50s) - min(p50s)) if p50s else 0.0,
    }


def multi_source_run(model: Model, source: str, counts: list[int], max_frames: int | None) -> list[dict[str, Any]]:
    """The same file as N sources at once, batched: frames per second per source for each N."""
    rows = []
    for count in counts:
        per_source = None if max_frames is None else max_frames * count
        record = RecordSink()
        summary = _run(model, [source] * count, [JsonlSink(os.devnull), record], per_source, batch=None)
        fps_total = 1000.0 / record.steady_ms_per_frame(WARM_FRAMES * count)
        infer = summary.timings.samples("infer")
        rows.append({"sources": count, "frames": summary.frames, "seconds": summary.seconds, "fps_total": fps_total,
                     "fps_per_source": fps_total / count, "engine_calls": int(infer.size),
                     "infer_p50_ms": float(np.percentile(infer, 50) * 1000.0) if infer.size else None})
    return rows


def run_pipeline_bench(
    model: Path, sources: list[str], backend: str = "onnxruntime", precision: str | None = "int8",
    threads: list[int | None] | None = None, max_frames: int | None = None, iters: int = 200, warmup: int = 10,
    paced_seconds: float = 0.0, window: float = 10.0, multi: list[int] | None = None, repeat: int = 3,
) -> dict[str, Any]:
    """Every measurement of this module; returns the ``pipeline.json`` document."""
    for source in sources:
        _file_source(source).close()  # a live or missing source fails before anything runs
    settings = threads or [None]
    runs: list[dict[str, Any]] = []
    paced: dict[str, Any] | None = None
    multi_rows: list[dict[str, Any]] = []
    for index, setting in enumerate(settings):
        with load(model, backend, precision, threads=setting) as opened:
            engine_alone(opened, sources[0], iters=warmup, warmup=warmup)  # warm the engine before any timed run
            described = opened.describe()
            input_size = list(opened.input_size)
            runs += [throughput_run(opened, source, setting, max_frames, iters, warmup, repeat) for source in sources]
            if index == 0 and paced_seconds > 0:
                paced = paced_run(opened, sources[0], paced_seconds, window, iters, warmup)
            if index == 0 and multi:
                multi_rows = multi_source_run(opened, sources[0], multi, max_frames)
    return {
        "machine": describe_machine(),
        "settings": {"model": str(model), "sources": sources, "backend": described, "input_size": input_size,
                     "iters": iters, "warmup": warmup, "threads": settings, "max_frames": max_frames, "repeat": repeat,
                     "resize": f"INTER_LINEAR to {PRESCALE}x the model size, then INTER_AREA, in a prepare thread per source"},
        "runs": runs,
        "overhead_vs_bottleneck": {_label(run): run["overhead_vs_bottleneck"] for run in runs},
        "paced": paced,
        "multi_source": multi_rows,
    }


def _range(run: dict[str, Any]) -> str:
    low, high = run.get("overhead_vs_bottleneck_range", [run["overhead_vs_bottleneck"]] * 2)
    return f"{low:.2f}–{high:.2f}"


def _label(run: dict[str, Any]) -> str:
    return f"{run['resolution']} threads {run['threads'] or 'default'}"


def summary_line(result: dict[str, Any]) -> str:
    parts = [f"{_label(run)}: ×{run['overhead_vs_bottleneck']:.2f} (CPU floor ×{run['cpu_floor_vs_bottleneck']:.2f})"
             for run in result["runs"]]
    line = "overhead over the bottleneck (pipeline ÷ max(engine, decode)): " + ", ".join(parts)
    if result.get("paced"):
        lat = result["paced"]["latency"]
        line += f"; paced latency p50 {lat['p50_ms']:.2f} ms, p99 {lat['p99_ms']:.2f} ms"
    return line


def section(result: dict[str, Any], folder: Path) -> list[Block]:
    """Report blocks for a pipeline result; writes ``pipeline_stages.png`` into ``folder``."""
    if "runs" not in result:  # a pipeline.json from before decode-alone timing (results/cpu-2core-x86_64)
        p, e = result["pipeline"], result["engine"]
        return [Heading("End-to-end runtime"),
                Para(f"{result['settings']['source']}, {result['settings']['backend']} (earlier schema: no decode-alone timing)."),
                Table(["pipeline FPS", "ms / frame", "engine FPS", "÷ engine", "dropped"],
                      [[p["fps"], p["per_frame_ms"], e["fps"], result["overhead"], p["dropped"]]])]
    s = result["settings"]
    first = result["runs"][0]
    stages = {name: stats for name, stats in first["pipeline"]["stages"].items() if stats}
    plot_bars(list(stages), [stats["mean_ms"] for stats in stages.values()], folder / "pipeline_stages.png",
              "mean ms per frame", f"memgaze-run per-stage latency ({_label(first)})")
    rows: list[list[Any]] = [
        [_label(r), r["pipeline"]["fps"], r["pipeline"]["per_frame_ms"], r["decode"]["mean_ms"], r["engine"]["mean_ms"],
         r["overhead_vs_bottleneck"], _range(r), r.get("cpu_floor_vs_bottleneck"), r["pipeline"].get("cpu_ms_per_frame"),
         r["pipeline"].get("cpu_utilisation"), r["overhead"], r["pipeline"]["stages"]["pre"].get("p50_ms"),
         r["python_work_p50_ms"], r["pipeline"]["dropped"]]
        for r in result["runs"]
    ]
    blocks: list[Block] = [
        Heading("End-to-end runtime"),
        Para(f"`memgaze-run --headless --jsonl` (Model.stream + a JSON-lines sink) with {s['backend']} at "
             f"{s['input_size'][0]}×{s['input_size'][1]} on {', '.join(Path(x).name for x in s['sources'])}; then, in the same "
             f"process, decoding alone (same file, same reader) and the engine alone on the same preprocessed frames "
             f"({s['iters']} calls after {s['warmup']} warm-up), in {s.get('repeat', 1)} rounds per file (the round with the "
             f"median ratio is shown, with the range of all rounds). Resize: {s['resize']}. Files are read at processing "
             "speed, so no frame is dropped."),
        Table(["run", "pipeline FPS", "ms / frame", "decode ms", "engine ms", "÷ bottleneck", "range", "CPU floor ÷ bottleneck",
               "CPU ms / frame", "CPU use (cores)", "÷ engine", "resize p50 ms", "post+sink p50 ms", "dropped"], rows),
        Para("÷ bottleneck = pipeline ms/frame ÷ max(decode alone, engine alone) (`overhead_vs_bottleneck`, goal ≤ 1.10 "
             "with --threads 1); CPU floor ÷ bottleneck = the lowest ratio these cores allow: the stages' own costs "
             "(decode + resize + engine + post/sink) ÷ usable cores ÷ the bottleneck, or 1.0 when the cores have room "
             "(above 1.0, the cores are too few for the bottleneck's rate, whatever the scheduling); CPU ms / frame and "
             "CPU use = the process's CPU time during the pipeline; post+sink = the Python work per frame on the inference thread."),
    ]
    paced = result.get("paced")
    if paced:
        lat, eng = paced["latency"], paced["engine"]
        blocks += [
            Heading("Latency on a paced source", 3),
            Para(f"{Path(paced['source']).name} replayed at its {paced['rate_fps']:.0f} FPS for {paced['seconds']:.0f} s "
                 f"({paced['frames']} frames scored, {paced['dropped']} dropped by the newest-frame policy). "
                 f"Capture-to-result latency p50 {lat['p50_ms']:.2f} ms, p99 {lat['p99_ms']:.2f} ms; the engine alone "
                 f"p50 {eng['p50_ms']:.2f} ms, p99 {eng['p99_ms']:.2f} ms. Spread of the per-window p50s: "
                 f"{paced['window_p50_spread_ms']:.2f} ms."),
            Table(["window start s", "frames", "p50 ms", "p99 ms"],
                  [[w["start_s"], w["frames"], w["p50_ms"], w["p99_ms"]] for w in paced["windows"]]),
        ]
    if result.get("multi_source"):
        blocks += [
            Heading("Several sources, one model", 3),
            Para("The same file opened N times, each with its own reader and resize thread; the newest frame of each "
                 "source goes into one engine call."),
            Table(["sources", "frames", "FPS total", "FPS per source", "engine calls", "infer p50 ms"],
                  [[m["sources"], m["frames"], m["fps_total"], m["fps_per_source"], m["engine_calls"], m["infer_p50_ms"]]
                   for m in result["multi_source"]]),
        ]
    return blocks
