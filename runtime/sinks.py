"""Where results go: an overlay window, JSON lines, CSV rows, an annotated video file, the MJPEG preview, calibration frames."""

from __future__ import annotations

import csv
import io
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
from memgaze.runtime.prediction import RECORD_KEYS, Failure, Prediction

JPEG_QUALITY = 85


class Sink:
    """Receives every prediction; ``annotated`` is the overlay image. A sink that :attr:`wants_overlay` gets
    only the frames that have one (source 0 of several); it, and one that :attr:`wants_images`, needs
    ``Prediction.image``.
    Files that could not be scored come to :meth:`write_failure`."""

    wants_overlay = False
    wants_images = False
    stop_reason: str | None = None  # set when this sink ends the run (window closed, reader gone)

    def write(self, result: Prediction, annotated: np.ndarray | None) -> None:
        raise NotImplementedError

    def write_failure(self, failure: Failure) -> None:
        """A file of a collection that could not be scored (ignored unless the sink keeps rows)."""

    def close(self) -> None:
        """Flush and release."""


def encode_jpeg(image: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        fail("OpenCV could not encode a JPEG")
    return data.tobytes()


ROW_MODES = ("new", "overwrite", "append")


def check_row_target(target: str, option: str, mode: str = "new") -> None:
    """One-line error when ``target`` (``--jsonl``/``--csv``) already holds rows and ``mode`` is "new": an earlier run's
    rows are never replaced or mixed with another run's unless asked (``--resume``, ``--overwrite``)."""
    if mode == "new" and target != "-" and os.path.isfile(target) and os.path.getsize(target) > 0:
        fail(f"{option} {target} already holds rows; --resume to continue that run (the files it scored are passed over), "
             "--overwrite to start it again, or give a new file")


class RowSink(Sink):
    """One text row per frame to a file or ``-`` (stdout), flushed per row: after Ctrl-C or a crash the file is
    complete up to the last row written. ``option`` names the CLI option in messages. ``mode``: "new" (a file that
    already holds rows is refused), "overwrite", or "append" (after :func:`memgaze.runtime.resume.prepare_resume`)."""

    option = "--jsonl"

    def __init__(self, target: str, mode: str = "new") -> None:
        check_row_target(target, self.option, mode)
        self._own = target != "-"
        self.appending = mode == "append" and self._own and os.path.isfile(target) and os.path.getsize(target) > 0
        try:
            self._handle: IO[str] = open(target, "a" if mode == "append" else "w", encoding="utf-8", newline="") \
                if self._own else sys.stdout
        except OSError as exc:
            fail(f"cannot write {self.option} {target}: {exc.strerror or exc}")

    def row(self, record: dict[str, object]) -> str:
        """The text written for a record (:meth:`Prediction.record` or :meth:`Failure.record`), with its line end."""
        raise NotImplementedError

    def _emit(self, text: str) -> None:
        if self.stop_reason:
            return
        try:
            self._handle.write(text)
            self._handle.flush()
        except BrokenPipeError:  # e.g. `memgaze-run --jsonl - | head`: end quietly
            os.dup2(os.open(os.devnull, os.O_WRONLY), self._handle.fileno())
            self.stop_reason = f"the {self.option} reader closed the pipe"

    def write(self, result: Prediction, annotated: np.ndarray | None) -> None:
        self._emit(self.row(result.record()))

    def write_failure(self, failure: Failure) -> None:
        self._emit(self.row(failure.record()))

    def close(self) -> None:
        if self._own:
            self._handle.close()
        elif not self.stop_reason:
            self._handle.flush()


class JsonlSink(RowSink):
    """One JSON object per frame (:meth:`Prediction.record`)."""

    def row(self, record: dict[str, object]) -> str:
        return json.dumps(record) + "\n"


CSV_COLUMNS = tuple(column for key in RECORD_KEYS for column in (("peak_x", "peak_y") if key == "peak" else (key,)))


class CsvSink(RowSink):
    """The JSON lines' fields as CSV rows for spreadsheets (:data:`CSV_COLUMNS`, a header first; empty where a field
    does not apply, e.g. ``frame`` of a photo)."""

    option = "--csv"

    def __init__(self, target: str, mode: str = "new") -> None:
        super().__init__(target, mode)
        self._buffer = io.StringIO()
        self._writer = csv.DictWriter(self._buffer, CSV_COLUMNS, lineterminator="\n")
        if not self.appending:
            self._writer.writeheader()
            self._emit(self._take())

    def _take(self) -> str:
        text = self._buffer.getvalue()
        self._buffer.seek(0)
        self._buffer.truncate()
        return text

    def row(self, record: dict[str, object]) -> str:
        peak = record.pop("peak", None)
        x, y = peak if isinstance(peak, list) else (None, None)
        self._writer.writerow({**record, "peak_x": x, "peak_y": y})
        return self._take()


VIDEO_FOURCC = "mp4v"
PROBE_SIZE = (64, 64)  # (width, height) of the trial writer that checks the codec and container before the run


def partial_video_path(path: Path) -> Path:
    """Where a video is written until complete: beside ``path``, same suffix (OpenCV picks the container by it)."""
    return path.with_name(f".{path.stem}.partial{path.suffix or '.mp4'}")


def open_video_writer(path: Path, fps: float, size_wh: tuple[int, int]) -> cv2.VideoWriter | None:
    """An mp4v ``cv2.VideoWriter`` of frames ``size_wh`` (width, height) at ``path``; None when OpenCV cannot open it."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*VIDEO_FOURCC), fps, size_wh)
    if writer.isOpened():
        return writer
    writer.release()
    return None


def check_video_target(target: str) -> Path:
    """``--save-video`` ``target`` as a path, after checking that its folder exists and is writable and that OpenCV
    opens a writer there (a trial file, removed again); one-line error otherwise, before any frame is scored."""
    path = Path(target)
    folder = path.parent
    if not folder.is_dir():
        fail(f"cannot write --save-video {target}: {folder} {'is not a folder' if folder.exists() else 'does not exist'}")
    if not os.access(folder, os.W_OK | os.X_OK):
        fail(f"cannot write --save-video {target}: folder {folder} is not writable")
    partial = partial_video_path(path)
    writer = open_video_writer(partial, 30.0, PROBE_SIZE)
    if writer is not None:
        writer.release()
    partial.unlink(missing_ok=True)
    if writer is None:
        fail(f"OpenCV cannot write video {target} (try a .mp4 or .avi name)")
    return path


class VideoSink(Sink):
    """The annotated frames as a video (mp4v); written beside the target and renamed when complete. The target is
    checked when the sink is made (:func:`check_video_target`)."""

    wants_overlay = True

    def __init__(self, path: str, fps: float) -> None:
        self.path = check_video_target(path)
        self._partial = partial_video_path(self.path)
        self._fps = fps if 0 < fps < 1000 else 30.0
        self._writer: cv2.VideoWriter | None = None

    def write(self, result: Prediction, annotated: np.ndarray | None) -> None:
        assert annotated is not None
        if self._writer is None:
            height, width = annotated.shape[:2]
            self._writer = open_video_writer(self._partial, self._fps, (width, height))
            if self._writer is None:
                fail(f"OpenCV cannot write video {self.path} at {width}x{height}")
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

    wants_images = True

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
