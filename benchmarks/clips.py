"""Benchmark clips: a real video re-encoded at a camera resolution (1280×720, 1920×1080), and sample frames."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from memgaze.atomic import atomic_path
from memgaze.errors import fail


def make_clip(source: Path, out: Path, size: tuple[int, int], frames: int = 300, fps: float = 30.0) -> Path:
    """Re-encode the first ``frames`` frames of ``source`` at ``size`` (W, H) as mp4v at ``fps`` (bicubic
    upscaling; the scene is real, the detail above the source's resolution is not)."""
    capture = cv2.VideoCapture(str(source))
    if not capture.isOpened():
        fail(f"cannot open video {source}")
    with atomic_path(out) as partial:
        target = partial.with_suffix(out.suffix or ".mp4")
        writer = cv2.VideoWriter(str(target), cv2.VideoWriter.fourcc(*"mp4v"), fps, size)
        if not writer.isOpened():
            fail(f"OpenCV cannot write {out}")
        written = 0
        while written < frames:
            ok, frame = capture.read()
            if not ok:
                break
            writer.write(cv2.resize(frame, size, interpolation=cv2.INTER_CUBIC))
            written += 1
        writer.release()
        capture.release()
        if written == 0:
            fail(f"no frame could be read from {source}")
        target.replace(partial)
    return out


def sample_frames(source: Path, count: int, size: tuple[int, int] | None = None) -> list[np.ndarray]:
    """``count`` frames spread evenly over a video (resized to ``size`` (W, H), bicubic, when given)."""
    capture = cv2.VideoCapture(str(source))
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    if not capture.isOpened() or total <= 0:
        fail(f"cannot read frames from {source}")
    frames = []
    for position in np.linspace(0, total - 1, count).astype(int):
        capture.set(cv2.CAP_PROP_POS_FRAMES, int(position))
        ok, frame = capture.read()
        if ok:
            frames.append(frame if size is None else cv2.resize(frame, size, interpolation=cv2.INTER_CUBIC))
    capture.release()
    return frames
