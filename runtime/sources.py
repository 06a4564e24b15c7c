"""Frame sources chosen by one argument: a camera, a URL, a GStreamer pipeline, or a collection of files (an image
or video file, a folder, a glob, a text file of paths: :mod:`memgaze.runtime.collection`).

Live sources (cameras, URLs, pipelines) are read by the capture thread, which keeps only the newest
frame; files and collections are read in order at processing speed, so no frame is dropped, and each
frame carries its :class:`Origin` (the file's name relative to the source's root; for a video, the
frame's number and time in it).

The URIs jetson-inference users type work as they do there: ``csi://0`` is a Jetson CSI camera
(``nvarguscamerasrc``; the frame is scaled to the capture size by ``nvvidconv`` in hardware) and
``v4l2:///dev/video0`` a V4L2 (USB) camera. Cameras are asked for a capture size near the model's
input (:func:`capture_wh`), or the ``--input-width/--input-height/--input-rate`` given.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from memgaze.cv2_build import has_gstreamer
from memgaze.errors import fail
from memgaze.media import UnreadableImage, read_image_for
from memgaze.runtime.collection import (
    LIST_SUFFIXES, MediaItem, file_identity, file_item, folder_items, glob_items, is_glob, list_file_items,
)

RTSP_SCHEMES = ("rtsp://", "rtsps://")
URL_SCHEMES = (*RTSP_SCHEMES, "rtmp://", "http://", "https://", "udp://", "tcp://")
# How RTP reaches an rtsp:// source: auto is OpenCV's default (TCP interleaved, falling back to UDP when the server
# refuses TCP); tcp or udp insists on one (FFmpeg's rtsp_transport).
RTSP_TRANSPORTS = ("auto", "tcp", "udp")
FFMPEG_OPTIONS_ENV = "OPENCV_FFMPEG_CAPTURE_OPTIONS"  # read by OpenCV's FFmpeg backend at each open: key;value|key;value
_FFMPEG_ENV_LOCK = threading.Lock()  # the environment is the process's: capture threads may (re)open sources at once
CSI_SCHEME = "csi://"
V4L2_SCHEME = "v4l2://"
HOW_TO_CHOOSE = "choose a source with --camera N or --source FILE|FOLDER|GLOB|LIST.txt|URL|csi://N|v4l2:///dev/videoN|PIPELINE"
MAX_BAD_FRAMES = 8  # consecutive undecodable frames of a file before it counts as ended
# Give up on a stalled network stream after this long instead of blocking forever.
STREAM_TIMEOUT_MS = 5000
# Capture sizes cameras commonly offer, smallest first: a camera is asked for the first that covers the model.
CAMERA_MODES = ((320, 240), (640, 360), (640, 480), (1280, 720), (1920, 1080))
CSI_SENSOR_MODE = (1280, 720)  # what nvarguscamerasrc captures before nvvidconv scales it down
DEFAULT_RATE = 30.0
SYSTEM_OPENCV_FIX = "use JetPack's system OpenCV, built with GStreamer: pip uninstall opencv-python-headless opencv-python"
# Software decoding of files and streams on one thread per source: the other cores resize and infer
# (FFmpeg's default, a thread per core, took 50% more CPU per 720p frame here for the same wall time,
# and its frame threads hold each frame back by one frame per thread).
DECODE_THREADS = 1


class SourceLost(Exception):
    """A live source stopped delivering frames (the capture thread reconnects)."""


class Undecodable(Exception):
    """One frame or file could not be decoded (skipped and counted); ``name`` is the file's, where it has one."""

    def __init__(self, message: str, name: str | None = None) -> None:
        super().__init__(message)
        self.name = name


@dataclass(frozen=True)
class Origin:
    """Where a frame of a file source came from: the file's name (its path relative to the source's root), for a
    video the frame's number in the file and its time in seconds (None for a still image), and the file's
    (size, modification time in ns) where the collection reader took them."""

    file: str
    frame: int | None = None
    timestamp: float | None = None
    identity: tuple[int, int] | None = None


@dataclass(frozen=True)
class SourceSpec:
    """What to read: ``kind`` is camera (an index or a /dev/video path), csi (a sensor id), url, pipeline, or a collection
    of files: file, folder (its sub-folders too when ``recursive``), glob or list (a text file of paths)."""

    kind: str
    target: str | int
    recursive: bool = True

    @property
    def live(self) -> bool:
        """Live sources keep only the newest frame; files and folders are read in order."""
        return self.kind in ("camera", "csi", "url", "pipeline")

    def __str__(self) -> str:
        return f"camera {self.target}" if self.kind == "camera" else f"{self.kind} {self.target}"


@dataclass(frozen=True)
class CaptureOptions:
    """What a camera is asked for (jetson-inference's ``--input-width/--input-height/--input-rate``); None: chosen."""

    width: int | None = None
    height: int | None = None
    rate: float | None = None
    rtsp_transport: str = "auto"

    def __post_init__(self) -> None:
        check_rtsp_transport(self.rtsp_transport)


def check_rtsp_transport(transport: str) -> str:
    """``transport`` if it is one of :data:`RTSP_TRANSPORTS`; one-line error otherwise."""
    if transport not in RTSP_TRANSPORTS:
        fail(f"the RTSP transport is one of {', '.join(RTSP_TRANSPORTS)}, not {transport!r}")
    return transport


def ffmpeg_capture_options(current: str | None, transport: str) -> str | None:
    """The value of :data:`FFMPEG_OPTIONS_ENV` for opening an RTSP source over ``transport``: ``current`` (the user's,
    None when unset) with its ``rtsp_transport`` replaced; ``current`` itself for auto."""
    if transport == "auto":
        return current
    kept = [pair for pair in (current or "").split("|") if pair and pair.split(";", 1)[0] != "rtsp_transport"]
    return "|".join([*kept, f"rtsp_transport;{transport}"])


@contextlib.contextmanager
def rtsp_transport_env(transport: str) -> Iterator[None]:
    """Within: :data:`FFMPEG_OPTIONS_ENV` asks FFmpeg for ``transport`` (:func:`ffmpeg_capture_options`), under a lock
    shared by every RTSP open; the user's value (or its absence) is restored on the way out."""
    with _FFMPEG_ENV_LOCK:
        previous = os.environ.get(FFMPEG_OPTIONS_ENV)
        wanted = ffmpeg_capture_options(previous, transport)
        if wanted is not None:
            os.environ[FFMPEG_OPTIONS_ENV] = wanted
        try:
            yield
        finally:
            if previous is None:
                os.environ.pop(FFMPEG_OPTIONS_ENV, None)
            else:
                os.environ[FFMPEG_OPTIONS_ENV] = previous


def capture_wh(options: CaptureOptions, model_hw: tuple[int, int]) -> tuple[int, int]:
    """(width, height) to ask a camera for: the size given, else the smallest common mode covering ``model_hw`` (H, W)."""
    if options.width and options.height:
        return options.width, options.height
    height, width = model_hw
    for mode in CAMERA_MODES:
        if mode[0] >= (options.width or width) and mode[1] >= (options.height or height):
            return mode
    return CAMERA_MODES[-1]


def parse_source(camera: int | None, source: str | None) -> SourceSpec:
    """Turn ``--camera`` / ``--source`` into a :class:`SourceSpec` (exactly one of them)."""
    if camera is not None and source is not None:
        fail("give either --camera or --source, not both")
    if source is None:
        return SourceSpec("camera", 0 if camera is None else camera)
    return source_spec(source)


def source_spec(source: str | int | Path, recursive: bool = True) -> SourceSpec:
    """One source as ``memgaze-run --source`` (or ``Model.stream``) takes it; an int is a camera index. A folder's
    sub-folders are read when ``recursive``."""
    if isinstance(source, int):
        return SourceSpec("camera", source)
    text = str(source)
    if "!" in text:
        return SourceSpec("pipeline", text)
    lower = text.lower()
    if lower.startswith(CSI_SCHEME):
        sensor = text[len(CSI_SCHEME):]
        if not sensor.isdigit():
            fail(f"source {text!r}: a CSI camera is csi://N with N the sensor id (csi://0)")
        return SourceSpec("csi", int(sensor))
    if lower.startswith(V4L2_SCHEME):
        device = text[len(V4L2_SCHEME):]
        if not device.startswith("/dev/"):
            fail(f"source {text!r}: a V4L2 camera is v4l2:///dev/videoN")
        return SourceSpec("camera", device)
    if lower.startswith(URL_SCHEMES):
        return SourceSpec("url", text)
    if text.startswith("/dev/video"):
        return SourceSpec("camera", text)
    path = Path(text)
    if path.is_dir():
        return SourceSpec("folder", text, recursive)
    if path.is_file():
        return SourceSpec("list" if path.suffix.lower() in LIST_SUFFIXES else "file", text)
    if is_glob(text):
        return SourceSpec("glob", text)
    fail(f"source {text!r} is not a file, a folder, a glob, a URL, a camera or a GStreamer pipeline; {HOW_TO_CHOOSE}")


def collection_items(spec: SourceSpec) -> list[MediaItem]:
    """The files of a file, folder, glob or list source, in order, each named relative to the source's root."""
    target = str(spec.target)
    if spec.kind == "folder":
        return folder_items(Path(target), spec.recursive)
    if spec.kind == "glob":
        return glob_items(target)
    if spec.kind == "list":
        return list_file_items(Path(target))
    if spec.kind == "file":
        return [file_item(Path(target))]
    fail(f"{spec} is a live source, not a collection of files")


def csi_pipeline(sensor: int, capture_wh: tuple[int, int], rate: float) -> str:
    """The GStreamer pipeline of a Jetson CSI camera, scaled to ``capture_wh`` (W, H) by nvvidconv (in hardware)."""
    width, height = capture_wh
    sensor_w, sensor_h = max(CSI_SENSOR_MODE[0], width), max(CSI_SENSOR_MODE[1], height)
    fps = f"{int(round(rate * 1000))}/1000"
    return (
        f"nvarguscamerasrc sensor-id={sensor} ! video/x-raw(memory:NVMM),width={sensor_w},height={sensor_h},framerate={fps} "
        f"! nvvidconv ! video/x-raw,width={width},height={height},format=BGRx ! videoconvert ! video/x-raw,format=BGR "
        "! appsink drop=1 max-buffers=1 sync=false"
    )


class FrameSource:
    """Reads BGR frames; ``read()`` returns a frame, None at the end, or raises SourceLost / Undecodable.

    ``full_shape`` is the (H, W) of the frame last read when it was decoded smaller than it is, else None;
    ``origin`` where that frame came from (files only, else None); ``items`` the files of a collection ([] when live)."""

    full_shape: tuple[int, int] | None = None
    origin: Origin | None = None
    items: list[MediaItem] = []

    def __init__(self, spec: SourceSpec) -> None:
        self.spec = spec

    @property
    def live(self) -> bool:
        """Whether the capture thread keeps only the newest frame (else every frame, in order)."""
        return self.spec.live

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
    """A camera, CSI camera, video file, URL or GStreamer pipeline through ``cv2.VideoCapture``.

    Cameras are asked for ``capture_wh`` (W, H) and ``rate``; the device picks its nearest mode. A video file named ``name``
    gives each frame its :class:`Origin`. An rtsp:// URL is read over ``rtsp_transport`` (:data:`RTSP_TRANSPORTS`)."""

    def __init__(self, spec: SourceSpec, capture_wh: tuple[int, int] | None = None, rate: float | None = None,
                 name: str | None = None, rtsp_transport: str = "auto") -> None:
        super().__init__(spec)
        self.capture_wh = capture_wh or CAMERA_MODES[2]
        self.rate = rate
        self.name = name
        self.rtsp_transport = check_rtsp_transport(rtsp_transport)
        self._capture: cv2.VideoCapture | None = None
        self._after_bad: tuple[np.ndarray, Origin | None] | None = None  # the good frame found past an undecodable one

    def _new_capture(self) -> cv2.VideoCapture:
        if self.spec.kind == "camera":
            api = cv2.CAP_V4L2 if sys.platform.startswith("linux") else cv2.CAP_ANY
            return cv2.VideoCapture(self.spec.target, api)
        if self.spec.kind == "csi":
            return cv2.VideoCapture(csi_pipeline(int(self.spec.target), self.capture_wh, self.rate or DEFAULT_RATE), cv2.CAP_GSTREAMER)
        if self.spec.kind == "pipeline":
            return cv2.VideoCapture(str(self.spec.target), cv2.CAP_GSTREAMER)
        threads = [cv2.CAP_PROP_N_THREADS, DECODE_THREADS]
        if self.spec.kind == "url":
            url = str(self.spec.target)
            timeouts = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, STREAM_TIMEOUT_MS, cv2.CAP_PROP_READ_TIMEOUT_MSEC, STREAM_TIMEOUT_MS]
            if not url.lower().startswith(RTSP_SCHEMES):
                return cv2.VideoCapture(url, cv2.CAP_FFMPEG, timeouts + threads)
            with rtsp_transport_env(self.rtsp_transport):
                return cv2.VideoCapture(url, cv2.CAP_FFMPEG, timeouts + threads)
        return cv2.VideoCapture(str(self.spec.target), cv2.CAP_ANY, threads)

    def open(self) -> None:
        self.close()
        capture = self._new_capture()
        if not capture.isOpened():
            capture.release()
            raise SourceLost(f"could not open {self.spec}")
        if self.spec.kind == "camera":
            capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)
            capture.set(cv2.CAP_PROP_FRAME_WIDTH, self.capture_wh[0])
            capture.set(cv2.CAP_PROP_FRAME_HEIGHT, self.capture_wh[1])
            if self.rate:
                capture.set(cv2.CAP_PROP_FPS, self.rate)
        self._capture = capture

    @property
    def fps(self) -> float:
        return float(self._capture.get(cv2.CAP_PROP_FPS)) if self._capture is not None else 0.0

    @property
    def frame_count(self) -> int:
        """The frames a video file's header announces (0 when unknown or live)."""
        return max(0, int(self._capture.get(cv2.CAP_PROP_FRAME_COUNT))) if self._capture is not None and not self.live else 0

    def _origin(self) -> Origin | None:
        """The origin of the frame just read: its number from the decoder's position, its time from the frame rate."""
        if self.name is None or self._capture is None:
            return None
        index = int(self._capture.get(cv2.CAP_PROP_POS_FRAMES)) - 1
        rate = self.fps
        return Origin(self.name, index, round(index / rate, 4) if 0 < rate < 1000 else None)

    def read(self) -> np.ndarray | None:
        if self._capture is None:
            raise SourceLost(f"{self.spec} is not open")
        if self._after_bad is not None:
            (frame, self.origin), self._after_bad = self._after_bad, None
            return frame
        ok, frame = self._capture.read()
        if ok and frame is not None:
            self.origin = self._origin()
            return frame
        if self.spec.live:
            raise SourceLost(f"{self.spec} stopped delivering frames")
        # A file: a failed read is either the end or a frame the decoder rejected; a later frame tells.
        for _ in range(MAX_BAD_FRAMES):
            ok, frame = self._capture.read()
            if ok and frame is not None:
                self._after_bad = frame, self._origin()
                raise Undecodable(f"a frame of {self.spec} could not be decoded; skipped", self.name)
        return None  # end of file

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None


class CollectionSource(FrameSource):
    """The files of a file, folder, glob or list source, read one after the other (a video frame by frame); JPEGs
    decoded smaller for a model of ``model_hw`` (H, W) where that is given (:func:`memgaze.media.read_image_for`).
    An unreadable file is skipped and counted (:class:`Undecodable`)."""

    def __init__(self, spec: SourceSpec, model_hw: tuple[int, int] | None = None) -> None:
        super().__init__(spec)
        self.model_hw = model_hw
        self.items = collection_items(spec)
        self._next = 0
        self._video: VideoCaptureSource | None = None

    def open(self) -> None:
        """Start from the first file; a single video file is opened now (SourceLost when it cannot be)."""
        self.close()
        self._next = 0
        if self.spec.kind == "file" and self.items[0].video:
            self._video = open_video(self.items[0])
            self._next = 1

    @property
    def fps(self) -> float:
        return self._video.fps if self._video is not None else 0.0

    def read(self) -> np.ndarray | None:
        while True:
            if self._video is not None:
                frame = self._video.read()
                if frame is not None:
                    self.origin, self.full_shape = self._video.origin, None
                    return frame
                self._video.close()
                self._video = None
            if self._next >= len(self.items):
                return None
            item = self.items[self._next]
            self._next += 1
            if item.video:
                try:
                    self._video = open_video(item)
                except SourceLost:
                    raise Undecodable(f"cannot open video {item.path}", item.name) from None
                continue
            try:
                frame, self.full_shape = read_image(item, self.model_hw)
            except UnreadableImage as exc:
                raise Undecodable(f"{item.path}: {exc}", item.name) from None
            self.origin = Origin(item.name, identity=file_identity(item.path))
            return frame

    def close(self) -> None:
        if self._video is not None:
            self._video.close()
            self._video = None


def open_video(item: MediaItem) -> VideoCaptureSource:
    """A collection's video file, opened (SourceLost when it cannot be), its frames named after ``item``."""
    video = VideoCaptureSource(SourceSpec("file", str(item.path)), name=item.name)
    video.open()
    return video


def read_image(item: MediaItem, model_hw: tuple[int, int] | None) -> tuple[np.ndarray, tuple[int, int] | None]:
    """A collection's image and its full (H, W) when decoded smaller for ``model_hw`` (None: decoded in full);
    :class:`memgaze.media.UnreadableImage` when it cannot be scored."""
    return read_image_for(item.path, model_hw)


def open_source(spec: SourceSpec, capture_wh: tuple[int, int] | None = None, rate: float | None = None,
                model_hw: tuple[int, int] | None = None, rtsp_transport: str = "auto") -> FrameSource:
    """Open ``spec`` (a camera asked for ``capture_wh`` (W, H) at ``rate``; a collection's JPEGs decoded no larger than a model
    of ``model_hw`` (H, W) needs; an rtsp:// URL read over ``rtsp_transport``); one-line error when it cannot be
    opened."""
    if spec.kind in ("csi", "pipeline") and not has_gstreamer():
        fail(f"{spec} needs OpenCV built with GStreamer, and this cv2 {cv2.__version__} has none "
             f"(pip's opencv-python-headless?); {SYSTEM_OPENCV_FIX}")
    source: FrameSource = (VideoCaptureSource(spec, capture_wh, rate, rtsp_transport=rtsp_transport) if spec.live
                           else CollectionSource(spec, model_hw))
    try:
        source.open()
    except SourceLost:
        fail(_open_failure(spec, rtsp_transport))
    return source


def _open_failure(spec: SourceSpec, rtsp_transport: str) -> str:
    if spec.kind == "camera":
        where = f"at index {spec.target}" if isinstance(spec.target, int) else f"at {spec.target}"
        return f"no camera {where} (or it is busy); {HOW_TO_CHOOSE}"
    if str(spec.target).lower().startswith(RTSP_SCHEMES):
        return f"could not open {spec} with RTP over {rtsp_transport} (--rtsp-transport {'|'.join(RTSP_TRANSPORTS)})"
    return f"could not open {spec}; {HOW_TO_CHOOSE}"
