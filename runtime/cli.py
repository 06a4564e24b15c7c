"""``memgaze-run``: score cameras, videos, photo collections (folders, globs, lists of paths), URLs or GStreamer pipelines
(a thin CLI over :mod:`memgaze.runtime.api`)."""

from __future__ import annotations

import os

# Before OpenCV loads: its own warnings (e.g. for a missing camera) would break the one-line errors.
os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
os.environ.setdefault("OPENCV_VIDEOIO_DEBUG", "0")
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # FFmpeg's own (e.g. an RTSP server's 461 Unsupported transport)

import signal  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import List, Optional  # noqa: E402

import cv2  # noqa: E402
import typer  # noqa: E402

from memgaze import __version__  # noqa: E402
from memgaze.runtime.api import Model, load  # noqa: E402
from memgaze.trt.recipe import MAX_BATCH  # noqa: E402
from memgaze.console import WarningCounter, console  # noqa: E402
from memgaze.errors import fail, run_cli  # noqa: E402
from memgaze.runtime.backends import BACKENDS, PRECISIONS  # noqa: E402
from memgaze.runtime.collection import GALLERY_MARKER  # noqa: E402
from memgaze.runtime.gallery import GallerySink, card_text  # noqa: E402
from memgaze.runtime.gallery_work import JOURNAL, check_target, work_folder  # noqa: E402
from memgaze.runtime.mjpeg import MjpegServer, parse_host_port  # noqa: E402
from memgaze.runtime.pipeline import Pipeline, Stream  # noqa: E402
from memgaze.runtime.progress import ProgressSink, show_progress  # noqa: E402
from memgaze.runtime.reader import CollectionReader  # noqa: E402
from memgaze.runtime.resume import prepare_resume  # noqa: E402
from memgaze.runtime.sinks import (  # noqa: E402
    CalibSink, CsvSink, JsonlSink, MjpegSink, Sink, VideoSink, WindowSink, check_row_target, check_video_target,
)
from memgaze.runtime.sources import RTSP_TRANSPORTS, check_rtsp_transport, parse_source  # noqa: E402
from memgaze.version import version_option  # noqa: E402

cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)

app = typer.Typer(add_completion=False, help=__doc__, pretty_exceptions_enable=False)


def _sinks(
    headless: bool, jsonl: str | None, csv: str | None, save_video: str | None, serve: str | None,
    save_calib: str | None, every: int, stream: Stream, mode: str,
) -> list[Sink]:
    sinks: list[Sink] = []
    if not headless:
        sinks.append(WindowSink())
    if jsonl:
        sinks.append(JsonlSink(jsonl, mode))
    if csv:
        sinks.append(CsvSink(csv, mode))
    if save_video:
        sinks.append(VideoSink(save_video, stream.sources[0].fps))
    if serve:
        server = MjpegServer(*parse_host_port(serve))
        console.print(f"preview at {server.url}")
        sinks.append(MjpegSink(server))
    if save_calib:
        sinks.append(CalibSink(save_calib, every))
    return sinks


def _row_mode(resume: bool, overwrite: bool, outputs: list[tuple[Path, str]], jsonl: str | None, csv: str | None) -> str:
    """How --jsonl/--csv files are opened (new, overwrite, append), checked before the model loads: a file that already
    holds rows is refused unless --resume or --overwrite says what to do with it."""
    if resume and overwrite:
        fail("give --resume (continue the rows already written) or --overwrite (start again), not both")
    if resume and not outputs:
        fail("--resume continues the rows of --jsonl FILE and/or --csv FILE; give the files of the run to continue")
    if not resume:
        for target, option in ((jsonl, "--jsonl"), (csv, "--csv")):
            if target:
                check_row_target(target, option, "overwrite" if overwrite else "new")
    return "append" if resume else "overwrite" if overwrite else "new"


def _resume(stream: Stream, outputs: list[tuple[Path, str]], report: str | None) -> None:
    """Repair and reconcile the outputs of the run to continue (its gallery's journal too), and pass over what it scored;
    one line on what was found."""
    journal = [(work_folder(Path(report), resume=True) / JOURNAL, "gallery")] if report else []
    state = prepare_resume(outputs + journal, stream.sources)
    stream.skip_scored(state)
    notes = [f"cut an unfinished last line in {state.repaired} file(s)"] if state.repaired else []
    notes += [f"{state.again} file(s) changed since or missing from an output: their rows removed, scored again"] \
        if state.again else []
    console.print(f"resuming: {state.rows} file(s) already scored in {', '.join(str(p) for p, _ in outputs)}"
                  + (f" ({'; '.join(notes)})" if notes else ""), soft_wrap=True)


def _gallery(report: str, scorer: Model, stream: Stream, targets: list[str | int], recursive: bool, resume: bool) -> GallerySink:
    """The --report sink: the model card and the run's settings on the page."""
    reader = stream.group
    if not isinstance(reader, CollectionReader):
        fail("--report ranks files (a folder, a glob, a list of paths, a video file), not a live source")
    manifest = scorer.bundle.manifest
    settings = {
        "bundle": str(scorer.bundle.root), "backend": scorer.describe(),
        "user": scorer.bundle.users[scorer.user or 0] if scorer.bundle.personalized else "generic viewer",
        "heatmap": scorer.map_label or "the model's map (its bundle does not say what it learned from)",
        "sources": "; ".join(map(str, targets)), "sub-folders": "read" if recursive else "left out (--no-recursive)",
        "batch": f"{reader.batch} per engine call, decoded on {reader.threads} threads",
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "memgaze": __version__,
    }
    return GallerySink(report, card_text(manifest.model_name, manifest.licence, scorer.bundle.root), settings, stream.summary,
                       resume=resume)


def _source_args(camera: int | None, sources: list[str]) -> list[str | int]:
    """``--camera`` / ``--source`` (repeatable) as the API takes them; the default is camera 0."""
    if camera is not None and sources:
        fail("give either --camera or --source, not both")
    if sources:
        return list(sources)
    spec = parse_source(camera, None)
    return [spec.target]


@app.command()
def run(
    camera: Optional[int] = typer.Option(None, "--camera", help="Camera index (V4L2 on Linux); the default source is camera 0."),
    source: List[str] = typer.Option(
        [], "--source", help="Image or video file, folder (sub-folders too), glob ('photos/**/*.jpg'), text file of paths "
        "(.txt/.lst), rtsp:// or http:// URL, csi://N, v4l2:///dev/videoN, or GStreamer pipeline (contains '!'). "
        "Repeatable: files are scored in order in batches; with a live source, the newest frame of each source goes in one batch.",
    ),
    recursive: bool = typer.Option(True, "--recursive/--no-recursive", help="Read a folder's sub-folders too."),
    model: Optional[str] = typer.Option(
        None, "--model", help=r"Deploy bundle folder written by memgaze-export, or a built-in model's name (memgaze-lite2-resmem) \[the built-in model, memgaze-lite0-resmem]."
    ),
    backend: str = typer.Option("auto", "--backend", help=f"{' | '.join(BACKENDS)}."),
    no_build: bool = typer.Option(
        False, "--no-build", help="Never build a TensorRT plan here (by default auto/tensorrt build one on first use, as memgaze-engine does)."
    ),
    precision: Optional[str] = typer.Option(None, "--precision", help=f"{' | '.join(PRECISIONS)}; default: the best available."),
    user: Optional[str] = typer.Option(None, "--user", help="Predict this user's gaze (one of the bundle's users)."),
    input_width: Optional[int] = typer.Option(None, "--input-width", min=1, help="Camera capture width (default: a mode near the model's size)."),
    input_height: Optional[int] = typer.Option(None, "--input-height", min=1, help="Camera capture height."),
    input_rate: Optional[float] = typer.Option(None, "--input-rate", min=0.1, help="Camera frame rate (CSI default 30)."),
    headless: bool = typer.Option(False, "--headless", help="No window."),
    jsonl: Optional[str] = typer.Option(None, "--jsonl", help="Write one JSON line per frame to FILE, or - for stdout."),
    csv: Optional[str] = typer.Option(None, "--csv", help="Write the same rows as CSV to FILE (or -), for spreadsheets."),
    report: Optional[str] = typer.Option(
        None, "--report", help="Write a ranked gallery to folder DIR: photos by score with heatmaps, a histogram, the model card, the settings."
    ),
    resume: bool = typer.Option(
        False, "--resume", help="Continue the run whose rows --jsonl/--csv hold: files already scored (same path, size and "
        "modification time) are passed over, the rest appended; an unfinished last line is cut; the gallery keeps every row.",
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the rows --jsonl/--csv already hold (without it, or --resume, they are refused)."),
    batch: int = typer.Option(MAX_BATCH, "--batch", min=1, help="Files: frames per engine call."),
    decode_threads: Optional[int] = typer.Option(None, "--decode-threads", min=1, help="Files: threads decoding photos (default: all cores)."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar and no per-stage table (the bar only shows on a terminal anyway)."),
    save_video: Optional[str] = typer.Option(None, "--save-video", help="Write the annotated frames (source 0) to a video FILE (mp4v)."),
    serve: Optional[str] = typer.Option(None, "--serve", help="MJPEG preview page at HOST:PORT (HOST defaults to 127.0.0.1)."),
    max_frames: Optional[int] = typer.Option(None, "--max-frames", min=1, help="Stop after N frames (all sources together)."),
    save_calib: Optional[str] = typer.Option(None, "--save-calib", help="Save raw frames to DIR for INT8 calibration."),
    every: int = typer.Option(30, "--every", min=1, help="With --save-calib: keep every K-th frame."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="ONNX Runtime intra-op threads (default: all cores)."),
    providers: Optional[str] = typer.Option(
        None, "--providers", help="ONNX Runtime providers, comma-separated (tensorrt,cuda,cpu or full names)."
    ),
    reconnect: int = typer.Option(5, "--reconnect", min=0, help="Reconnect attempts for a lost camera or stream."),
    rtsp_transport: str = typer.Option(
        "auto", "--rtsp-transport", help=f"{' | '.join(RTSP_TRANSPORTS)}: how an rtsp:// source sends RTP; auto is OpenCV's "
        "TCP, falling back to UDP when the server refuses TCP.",
    ),
    version: bool = version_option(),
) -> None:
    """Score every frame of a source: memorability + gaze heatmap, to a window, JSON lines, CSV, a gallery, a video or a browser."""
    targets = _source_args(camera, source)
    check_rtsp_transport(rtsp_transport)
    outputs = [(Path(target), kind) for target, kind in ((jsonl, "jsonl"), (csv, "csv")) if target and target != "-"]
    mode = _row_mode(resume, overwrite, outputs, jsonl, csv)  # before the model loads (a TensorRT build can take minutes)
    if save_video:
        check_video_target(save_video)
    if report:
        check_target(Path(report), GALLERY_MARKER)
    warnings = WarningCounter("frames")
    with load(model, backend, precision, user, threads=threads, providers=providers.split(",") if providers else None,
              build=not no_build) as scorer:
        stream = scorer.stream(targets, input_width=input_width, input_height=input_height, input_rate=input_rate,
                               max_frames=max_frames, reconnect=reconnect, warnings=warnings, batch=batch,
                               decode_threads=decode_threads, recursive=recursive, rtsp_transport=rtsp_transport)
        sinks: list[Sink] = []
        try:
            if resume:
                _resume(stream, outputs, report)
            sinks += _sinks(headless, jsonl, csv, save_video, serve, save_calib, every, stream, mode)
            if report:
                sinks.append(_gallery(report, scorer, stream, targets, recursive, resume))
            if show_progress(quiet, stream.progress()[1]):
                sinks.append(ProgressSink(stream.progress))
        except BaseException:
            stream.close()
            for sink in sinks:
                sink.close()
            raise
        names = "; ".join(f"[{i}] {s.spec}" for i, s in enumerate(stream.sources)) if len(targets) > 1 else str(stream.sources[0].spec)
        console.print(f"model {scorer.bundle.root} on {scorer.describe()}; source {names}", soft_wrap=True)
        if headless and not (jsonl or csv or report or save_video or serve or save_calib):
            console.print("headless with no --jsonl/--csv/--report/--save-video/--serve: only the summary will be printed")
        summary = Pipeline(stream, sinks, scorer.map_label, stages=not quiet).run()
        warnings.summary()
    if summary.frames == 0 and not summary.resumed:
        fail(f"no frame could be scored from {names} ({summary.end_reason or 'no frames'})")


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> None:
    """Console entry point: SIGTERM stops like Ctrl-C (summary printed); errors are one line."""
    signal.signal(signal.SIGTERM, _terminate)
    run_cli(app)
