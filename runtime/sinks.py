"""Where results go: an overlay window, JSON lines, an annotated video file, the MJPEG preview, calibration frames."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import IO

import cv2
import numpy as np

from memgaze.atomic import write_bytes
from memgaze.errors import fail
from memgaze.runtime.mjpeg import MjpegServer
from memgaze.runtime.prediction import Prediction

JPEG_QUALITY = 85


class Sink:
    """Receives every prediction; ``annotated`` is the overlay image. A sink that :attr:`wants_overlay` gets
    only the frames that have one (source 0 of several)."""

    wants_overlay = False
    stop_reason: str | None = None  # set when this sink ends the run (window closed, reader gone)

    def write(self, result: Prediction, annotated: np.ndarray | None) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Flush and release."""


def encode_jpeg(image: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        fail("OpenCV could not encode a JPEG")
    return data.tobytes()


class JsonlSink(Sink):
    """One JSON object per frame to a file or ``-`` (stdout), flushed per line."""

    def __init__(self, target: str) -> None:
        self._own = target != "-"
        try:
            self._handle: IO[str] = open(target, "w", encoding="utf-8") if self._own else sys.stdout
        except OSError as exc:
            fail(f"cannot write --jsonl {target}: {exc.strerror or exc}")

    def write(self, result: Prediction, annotated: np.ndarray | None) -> None:
        if self.stop_reason:
            return
        try:
            self._handle.write(json.dumps(result.record()) + "\n")
            self._handle.flush()
        except BrokenPipeError:  # e.g. `memgaze-run --jsonl - | head`: end quietly
            os.dup2(os.open(os.devnull, os.O_WRONLY), self._handle.fileno())
            self.stop_reason = "the --jsonl reader closed the pipe"

    def close(self) -> None:
        if self._own:
            self._handle.close()
        elif not self.stop_reason:
            self._handle.flush()


class VideoSink(Sink):
    """The annotated frames as a video (mp4v); written beside the target and renamed when complete."""

    wants_overlay = True

    def __init__(self, path: str, fps: float) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Same suffix so OpenCV picks the right container; renamed to `path` on close.
        self._partial = self.path.with_name(f".{self.path.stem}.partial{self.path.suffix or '.mp4'}")
        self._fps = fps if 0 < fps < 1000 else 30.0
        self._writer: cv2.VideoWriter | None = None

    def write(self, result: Prediction, annotated: np.ndarray | None) -> None:
        assert annotated is not None
        if self._writer is None:
            height, width = annotated.shape[:2]
            self._writer = cv2.VideoWriter(str(self._partial), cv2.VideoWriter.fourcc(*"mp4v"), self._fps, (width, height))
            if not self._writer.isOpened():
                fail(f"OpenCV cannot write video {self.path} (try a .mp4 or .avi name)")
        self._writer.write(annotated)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None
            os.replace(self._partial, self.path)


class MjpegSink(Sink):
    """Publishes each annotated frame as JPEG to the preview server."""

    wants_overlay = True

    def __init__(self, server: MjpegServer) -> None:
        self.server = server

    def write(self, result: Prediction, annotated: np.ndarray | None) -> None:
        assert annotated is not None
        self.server.publish(encode_jpeg(annotated))

    def close(self) -> None:
        self.server.close()


def display_available() -> bool:
    """True when a window can be shown (a display server, and an OpenCV build with GUI support)."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False
    try:
        cv2.namedWindow("memgaze", cv2.WINDOW_NORMAL)
    except cv2.error:
        return False
    return True


class WindowSink(Sink):
    """The overlay in an OpenCV window; q or Esc ends the run."""

    wants_overlay = True
    TITLE = "memgaze"

    def __init__(self) -> None:
        if not display_available():
            fail("no display for the overlay window (or OpenCV has no GUI support); run with --headless "
                 "(add --serve 127.0.0.1:8080 to watch in a browser)")

    def write(self, result: Prediction, annotated: np.ndarray | None) -> None:
        assert annotated is not None
        cv2.imshow(self.TITLE, annotated)
        if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
            self.stop_reason = "closed from the window (q / Esc)"

    def close(self) -> None:
        cv2.destroyAllWindows()


class CalibSink(Sink):
    """Every ``every``-th raw frame as a JPEG in ``folder`` (atomic writes), for INT8 calibration."""

    def __init__(self, folder: str, every: int) -> None:
        if every < 1:
            fail("--every must be at least 1")
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.every = every
        self.saved = 0

    def write(self, result: Prediction, annotated: np.ndarray | None) -> None:
        if result.index % self.every == 0 and result.image is not None:
            tag = f"s{result.source}_" if result.source else ""  # source 0 (or a single source) keeps the plain name
            write_bytes(self.folder / f"frame_{tag}{result.index:07d}.jpg", encode_jpeg(result.image, 95))
            self.saved += 1
