"""Which resize feeds the model: speed at 1280×720 and 1920×1080 and the change in the model's output
against INTER_AREA (the runtime's resize before this benchmark), on real video frames. Two candidates
start from the frame stored as a JPEG and include its decoding: decoded in full, or decoded smaller
by libjpeg's DCT scaling (what a folder of photos or an MJPEG camera allows; a video file does not).

Every candidate is timed round-robin on the same frames in one run, single-threaded (OpenCV with one
thread, ONNX Runtime with one intra-op thread), as the capture thread runs it. Accuracy: the demo
bundle's score and heatmap for each candidate's input against those for INTER_AREA's (mean |Δscore|,
mean heatmap CC), and the mean absolute pixel difference of the model inputs.
"""

from __future__ import annotations

import functools
import itertools
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np

from memgaze.bench.clips import sample_frames
from memgaze.bench.machine import describe_machine
from memgaze.bench.report import Block, Heading, Para, Table
from memgaze.bench.timing import summarize, time_interleaved
from memgaze.correlation import pearson_rows
from memgaze.media import reduced_read, resize_frame
from memgaze.runtime.backends import open_backend
from memgaze.runtime.bundle import load_bundle

Resize = Callable[[np.ndarray, tuple[int, int]], np.ndarray]
RESOLUTIONS = ((1280, 720), (1920, 1080))


def area(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The reference: OpenCV INTER_AREA straight to the model size."""
    return cv2.resize(frame, (size[1], size[0]), interpolation=cv2.INTER_AREA)


def linear(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """INTER_LINEAR straight to the model size (samples 2×2 pixels per output pixel: aliasing)."""
    return cv2.resize(frame, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)


def decimate_linear(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Every k-th pixel (k = the integer part of the shrink factor), then INTER_LINEAR."""
    k = max(1, min(frame.shape[0] // size[0], frame.shape[1] // size[1]))
    return linear(np.ascontiguousarray(frame[::k, ::k]), size)


def pyrdown_area(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """cv2.pyrDown (5×5 Gaussian, halve) while the frame is at least twice the model size, then INTER_AREA."""
    while frame.shape[0] >= 2 * size[0] and frame.shape[1] >= 2 * size[1]:
        frame = cv2.pyrDown(frame)
    return area(frame, size)


def linear_then_area(factor: int) -> Resize:
    """INTER_LINEAR to ``factor`` × the model size, then INTER_AREA (the memgaze.media.resize_frame scheme)."""
    return lambda frame, size: resize_frame(frame, size, prescale=factor)


def in_graph(frame_shape: tuple[int, int], size: tuple[int, int], threads: int = 1) -> Resize:
    """An ONNX Resize (linear, antialias) run by ONNX Runtime: the cost of resizing inside the model graph."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    h, w = frame_shape
    nodes = [
        helper.make_node("Cast", ["image"], ["f"], to=TensorProto.FLOAT),
        helper.make_node("Resize", ["f", "", "", "sizes"], ["r"], mode="linear", antialias=1, axes=[1, 2]),
        helper.make_node("Cast", ["r"], ["out"], to=TensorProto.UINT8),
    ]
    graph = helper.make_graph(
        nodes, "resize", [helper.make_tensor_value_info("image", TensorProto.UINT8, [1, h, w, 3])],
        [helper.make_tensor_value_info("out", TensorProto.UINT8, [1, *size, 3])],
        [helper.make_tensor("sizes", TensorProto.INT64, [2], list(size))],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return lambda frame, _size: session.run(None, {"image": frame[np.newaxis]})[0][0]


JPEG_QUALITY = 95  # the frames as a camera or a photo folder stores them, for the reduced-decoding candidates


def jpeg_decode(frames: list[np.ndarray], reduced: bool) -> Resize:
    """Decode each frame's JPEG (encoded once, beforehand) with OpenCV, then the chosen resize: in full, or at the
    smallest 1/8, 1/4 or 1/2 scale (libjpeg's DCT scaling) that keeps it at least 2× the model size, chosen as the
    runtime chooses (:func:`memgaze.media.reduced_read`). Timed with the decoding, which is the point: a smaller
    decode replaces the resize."""
    encoded = {id(f): cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])[1] for f in frames}

    def decode(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        flag = reduced_read(frame.shape[:2], size)[0] if reduced else cv2.IMREAD_COLOR
        decoded = cv2.imdecode(encoded[id(frame)], flag)
        assert decoded is not None  # encoded just above
        return resize_frame(decoded, size)

    return decode


def candidates(frame_shape: tuple[int, int], size: tuple[int, int], frames: list[np.ndarray]) -> dict[str, Resize]:
    """Every candidate by name; ``area`` is the reference."""
    return {
        "INTER_AREA (reference)": area,
        "INTER_LINEAR": linear,
        "decimate + INTER_LINEAR": decimate_linear,
        "pyrDown chain + INTER_AREA": pyrdown_area,
        "INTER_LINEAR to 2× + INTER_AREA": linear_then_area(2),
        "INTER_LINEAR to 3× + INTER_AREA": linear_then_area(3),
        "INTER_LINEAR to 4× + INTER_AREA": linear_then_area(4),
        "in-graph Resize (ORT, antialias)": in_graph(frame_shape, size),
        "JPEG decode + 2× + INTER_AREA (timed with decode)": jpeg_decode(frames, reduced=False),
        "JPEG decode reduced + 2× + INTER_AREA (timed with decode)": jpeg_decode(frames, reduced=True),
    }


def _outputs(engine: Any, inputs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    scores, heatmaps = engine.infer(np.stack(inputs))
    return scores, heatmaps[:, 0]


def run_resize_bench(model: Path, videos: list[Path], frames_per_video: int = 10, iters: int = 100,
                     precision: str = "int8") -> dict[str, Any]:
    """Time and judge every candidate at each resolution of RESOLUTIONS on frames of ``videos``."""
    cv2.setNumThreads(1)
    bundle = load_bundle(model)
    size = bundle.input_size
    rows = []
    with open_backend(bundle, "onnxruntime", precision, threads=1) as engine:
        for width, height in RESOLUTIONS:
            frames = [f for video in videos for f in sample_frames(video, frames_per_video, (width, height))]
            methods = candidates((height, width), size, frames)
            cycle = {name: itertools.cycle(frames) for name in methods}
            calls: dict[str, Callable[[], object]] = {
                name: functools.partial(lambda n, fn: fn(next(cycle[n]), size), name, fn) for name, fn in methods.items()}
            timed = time_interleaved(calls, iters, warmup=5, rounds=5)
            reference = [area(f, size) for f in frames]
            ref_scores, ref_maps = _outputs(engine, reference)
            for name, fn in methods.items():
                inputs = [fn(f, size) for f in frames]
                scores, maps = _outputs(engine, inputs)
                rows.append({
                    "resolution": f"{width}x{height}", "method": name, **summarize(timed[name]),
                    "mean_abs_pixel": float(np.mean([np.abs(a.astype(np.int16) - b).mean() for a, b in zip(inputs, reference)])),
                    "mean_abs_dscore": float(np.abs(scores - ref_scores).mean()),
                    "max_abs_dscore": float(np.abs(scores - ref_scores).max()),
                    "heatmap_cc": float(pearson_rows(maps, ref_maps).mean()),
                })
        described = engine.describe()
    return {
        "machine": describe_machine(),
        "settings": {"model": str(model), "backend": described, "input_size": list(size), "iters": iters,
                     "videos": [str(v) for v in videos], "frames_per_video": frames_per_video,
                     "chosen": "INTER_LINEAR to 2× + INTER_AREA"},
        "rows": rows,
    }


def section(result: dict[str, Any], folder: Path) -> list[Block]:
    """Report blocks for a resize result."""
    s = result["settings"]
    rows = [[r["resolution"], r["method"], r["p50_ms"], r["mean_ms"], r["mean_abs_pixel"], r["mean_abs_dscore"],
             r["max_abs_dscore"], r["heatmap_cc"]] for r in result["rows"]]
    videos = ", ".join(Path(v).name for v in s["videos"])
    return [
        Heading("Resize to the model input"),
        Para(f"{s['frames_per_video']} frames from each of {videos} (real scenes, bicubic-upscaled to each resolution), "
             f"resized to {s['input_size'][0]}×{s['input_size'][1]}; one OpenCV thread; {s['iters']} timed calls each, "
             f"round-robin. Accuracy: {s['backend']} on each candidate's input vs on INTER_AREA's. Chosen: {s['chosen']}."),
        Table(["resolution", "method", "p50 ms", "mean ms", "mean |Δpixel|", "mean |Δscore|", "max |Δscore|", "heatmap CC"], rows),
    ]
