"""Frame sources chosen by one argument: a camera index, a video file, a folder of images, a URL or a GStreamer pipeline.

Live sources (camera, URL, pipeline) are read by the capture thread, which keeps only the newest
frame; files and folders are read in order at processing speed, so no frame is dropped.

A Jetson CSI camera is a GStreamer pipeline ending in an appsink that keeps one buffer, e.g.::

    memgaze-run --source "nvarguscamerasrc sensor-id=0 ! video/x-raw(memory:NVMM),width=1280,height=720,framerate=30/1 \
        ! nvvidconv ! video/x-raw,format=BGRx ! videoconvert ! video/x-raw,format=BGR ! appsink drop=1 max-buffers=1"
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from memgaze.errors import fail
from memgaze.media import IMAGE_SUFFIXES as MEDIA_IMAGE_SUFFIXES

URL_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://")
IMAGE_SUFFIXES = MEDIA_IMAGE_SUFFIXES | {".pgm", ".ppm"}  # a folder source also plays raw camera dumps
HOW_TO_CHOOSE = "choose a source with --camera N or --source FILE|FOLDER|URL|PIPELINE"
MAX_BAD_FRAMES = 8  # consecutive undecodable frames of a file before it counts as ended
# Give up on a stalled network stream after this long instead of blocking forever.
STREAM_TIMEOUT_MS = 5000


class SourceLost(Exception):
    """A live source stopped delivering frames (the capture thread reconnects)."""


class Undecodable(Exception):
    """One frame could not be decoded (skipped and counted)."""


@dataclass(frozen=True)
class SourceSpec:
    """What to read: ``kind`` is camera, file, folder, url or pipeline."""

    kind: str
    target: str | int

    @property
    def live(self) -> bool:
        """Live sources keep only the newest frame; files and folders are read in order."""
        return self.kind in ("camera", "url", "pipeline")

    def __str__(self) -> str:
        return f"camera {self.target}" if self.kind == "camera" else f"{self.kind} {self.target}"


def parse_source(camera: int | None, source: str | None) -> SourceSpec:
    """Turn ``--camera`` / ``--source`` into a :class:`SourceSpec` (exactly one of them)."""
    if camera is not None and source is not None:
        fail("give either --camera or --source, not both")
    if source is None:
        return SourceSpec("camera", 0 if camera is None else camera)
    if "!" in source:
        return SourceSpec("pipeline", source)
    if source.lower().startswith(URL_SCHEMES):
        return SourceSpec("url", source)
    path = Path(source)
    if path.is_dir():
        return SourceSpec("folder", source)
    if path.is_file():
        return SourceSpec("file", source)
    fail(f"source {source!r} is not a file, a folder, a URL or a GStreamer pipeline; {HOW_TO_CHOOSE}")


class FrameSource:
    """Reads BGR frames; ``read()`` returns a frame, None at the end, or raises SourceLost / Undecodable."""

    def __init__(self, spec: SourceSpec) -> None:
        self.spec = spec

    def open(self) -> None:
        """Open the source; raises SourceLost when it cannot be opened."""

    @property
    def fps(self) -> float:
        """The source's nominal frame rate (0 when unknown)."""
        return 0.0

    def read(self) -> np.ndarray | None:
        raise NotImplementedError

    def close(self) -> None:
        """Release the source."""


class VideoCaptureSource(FrameSource):
    """A camera, video file, URL or GStreamer pipeline through ``cv2.VideoCapture``."""

    def __init__(self, spec: SourceSpec) -> None:
        super().__init__(spec)
        self._capture: cv2.VideoCapture | None = None
        self._after_bad: np.ndarray | None = None  # the good frame found past an undecodable one

    def _new_capture(self) -> cv2.VideoCapture:
        if self.spec.kind == "camera":
            api = cv2.CAP_V4L2 if sys.platform.startswith("linux") else cv2.CAP_ANY
            return cv2.VideoCapture(int(self.spec.target), api)
        if self.spec.kind == "pipeline":
            return cv2.VideoCapture(str(self.spec.target), cv2.CAP_GSTREAMER)
        if self.spec.kind == "url":
            timeouts = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, STREAM_TIMEOUT_MS, cv2.CAP_PROP_READ_TIMEOUT_MSEC, STREAM_TIMEOUT_MS]
            return cv2.VideoCapture(str(self.spec.target), cv2.CAP_FFMPEG, timeouts)
        return cv2.VideoCapture(str(self.spec.target))

    def open(self) -> None:
        self.close()
        capture = self._new_capture()
        if not capture.isOpened():
            capture.release()
            raise SourceLost(f"could not open {self.spec}")
        if self.spec.kind == "camera":
            capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        self._capture = capture

    @property
    def fps(self) -> float:
        return float(self._capture.get(cv2.CAP_PROP_FPS)) if self._capture is not None else 0.0

    def read(self) -> np.ndarray | None:
        if self._capture is None:
            raise SourceLost(f"{self.spec} is not open")
        if self._after_bad is not None:
            frame, self._after_bad = self._after_bad, None
            return frame
        ok, frame = self._capture.read()
        if ok and frame is not None:
            return frame
        if self.spec.live:
            raise SourceLost(f"{self.spec} stopped delivering frames")
        # A file: a failed read is either the end or a frame the decoder rejected; a later frame tells.
        for _ in range(MAX_BAD_FRAMES):
            ok, frame = self._capture.read()
            if ok and frame is not None:
                self._after_bad = frame
                raise Undecodable(f"a frame of {self.spec} could not be decoded; skipped")
        return None  # end of file

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None


class FolderSource(FrameSource):
    """The images of a folder, sorted by name, read as a stream."""

    def __init__(self, spec: SourceSpec) -> None:
        super().__init__(spec)
        folder = Path(str(spec.target))
        self.files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not self.files:
            fail(f"folder {folder} has no images ({', '.join(sorted(IMAGE_SUFFIXES))}); {HOW_TO_CHOOSE}")
        self._next = 0

    def read(self) -> np.ndarray | None:
        if self._next >= len(self.files):
            return None
        path = self.files[self._next]
        self._next += 1
        frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if frame is None:
            raise Undecodable(f"cannot decode {path}")
        return frame


def open_source(spec: SourceSpec) -> FrameSource:
    """Open ``spec``; one-line error when it cannot be opened the first time."""
    source: FrameSource = FolderSource(spec) if spec.kind == "folder" else VideoCaptureSource(spec)
    try:
        source.open()
    except SourceLost:
        fail(_open_failure(spec))
    return source


def _open_failure(spec: SourceSpec) -> str:
    if spec.kind == "camera":
        return f"no camera at index {spec.target} (or it is busy); {HOW_TO_CHOOSE}"
    if spec.kind == "pipeline" and not re.search(r"GStreamer:\s+YES", cv2.getBuildInformation()):
        return "this OpenCV build has no GStreamer support; install OpenCV with GStreamer (JetPack's) to use a pipeline"
    return f"could not open {spec}; {HOW_TO_CHOOSE}"
