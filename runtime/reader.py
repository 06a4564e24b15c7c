"""Finite sources in batches: every file of every source, in order, decoded and resized on a pool of threads and
handed to the inference thread N frames at a time.

This is how a photo collection is scored (``memgaze-run --source photos/``): OpenCV's JPEG decoding (at 1/2–1/8
scale where the model allows, :func:`memgaze.media.read_image_for`) and resize release the GIL, so the pool
decodes on every core while the engine scores the previous batch. A video in a collection is decoded in order on
the reader thread, its frames resized on the pool. Nothing is dropped: the reader waits when the inference
thread is behind (a bounded queue). Live sources keep their newest-frame policy (:mod:`memgaze.runtime.capture`).
"""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Protocol

from memgaze.console import WarningCounter
from memgaze.errors import fail
from memgaze.heif import HEIF_SUFFIXES, heif_support, missing_decoder_message
from memgaze.media import UnreadableImage, read_image_for, resize_frame
from memgaze.runtime.capture import Frame, note_unreadable
from memgaze.runtime.collection import MediaItem, file_identity
from memgaze.runtime.sources import FrameSource, Origin, SourceLost, Undecodable, open_video
from memgaze.system import usable_cores

POLL_SECONDS = 0.1  # how often a blocked reader checks whether it was stopped


@dataclass(frozen=True)
class Skipped:
    """A file or frame that could not be read: the warning to give, the file's name, and for a whole file (not one
    frame of a video) its source, the reason its row gives, and its (size, modification time in ns)."""

    message: str
    name: str | None
    source: int | None = None
    reason: str = ""
    identity: tuple[int, int] | None = None

    @property
    def whole_file(self) -> bool:
        """A file that gets a row with its error (a video's undecodable frame is only counted)."""
        return self.source is not None and self.name is not None


def _done(result: Frame | Skipped) -> Future[Frame | Skipped]:
    future: Future[Frame | Skipped] = Future()
    future.set_result(result)
    return future


class Done(Protocol):
    """What an earlier run already scored (:class:`memgaze.runtime.resume.Resume`)."""

    def photo_done(self, source: int, name: str, identity: tuple[int, int] | None) -> bool: ...

    def last_frame(self, source: int, name: str, identity: tuple[int, int] | None) -> int: ...


class CollectionReader:
    """The frames of finite ``sources`` (collections of files) for a model of input ``model_hw`` (H, W), ``batch`` at a time,
    decoded on ``threads`` threads (default: every usable core). The same interface as
    :class:`memgaze.runtime.capture.CaptureGroup`: :meth:`start`, :meth:`next_batch`, :meth:`stop` and the counters.
    Files ``done`` says were scored already (by path, size and modification time) are passed over (counted in
    ``resumed``); ``verify``: truncated files are refused (:func:`memgaze.media.read_image_for`)."""

    def __init__(self, sources: list[FrameSource], *, model_hw: tuple[int, int], batch: int, threads: int | None = None,
                 warnings: WarningCounter | None = None, done: Done | None = None, verify: bool = True) -> None:
        if batch < 1:
            fail(f"the batch size must be at least 1, got {batch}")
        if threads is not None and threads < 1:
            fail(f"the decode threads must be at least 1, got {threads}")
        if any(source.live for source in sources):
            fail("a live source cannot be read as a collection of files")
        self.sources = sources
        self.model_hw = model_hw
        self.batch = batch
        self.threads = threads or usable_cores()
        self.warnings = warnings or WarningCounter("frames")
        self.dropped = 0  # never: nothing is dropped from a collection
        self.reconnects = 0
        self.undecodable = 0
        self.unreadable_names: list[str] = []
        self.resumed = 0  # files (and video frames) an earlier run scored
        self.end_reason = ""
        self.done = done
        self.verify = verify
        self.total = sum(len(source.items) for source in sources)  # frames expected: a video counts its own when opened
        self._warn_missing_decoder()
        self._queue: queue.Queue[Future[Frame | Skipped] | None] = queue.Queue(maxsize=2 * batch + self.threads)
        self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="memgaze-decode")
        self._stop = threading.Event()
        self._producer = threading.Thread(target=self._produce, name="memgaze-collection", daemon=True)
        self._indices = [0] * len(sources)
        self._ended = False

    def _warn_missing_decoder(self) -> None:
        """One line when the collections hold HEIC/HEIF/AVIF photos that cannot be decoded here (each gets its error row)."""
        count = sum(item.path.suffix.lower() in HEIF_SUFFIXES for source in self.sources for item in source.items)
        if count and not heif_support():
            self.warnings.warn("missing decoder", f"{count} HEIC/HEIF/AVIF photo(s) will not be scored: {missing_decoder_message()}")

    def start(self) -> CollectionReader:
        self._producer.start()
        return self

    def _put(self, future: Future[Frame | Skipped] | None) -> bool:
        """Queue ``future`` in order, waiting for room; False when stopped meanwhile."""
        while not self._stop.is_set():
            try:
                self._queue.put(future, timeout=POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self) -> None:
        try:
            for source_id, source in enumerate(self.sources):
                for item in source.items:
                    if self._stop.is_set():
                        return
                    identity = file_identity(item.path)
                    if item.video:
                        self._produce_video(source_id, item, identity)
                    elif self.done is not None and self.done.photo_done(source_id, item.name, identity):
                        self.resumed += 1
                    elif not self._put(self._pool.submit(self._load_image, source_id, item, identity)):
                        return
            self.end_reason = "end of " + ", ".join(str(source.spec) for source in self.sources)
        except Exception as exc:  # an OpenCV error must end the run with a message, not kill the thread silently
            self.end_reason = f"reading stopped: {exc}"
        finally:
            self._put(None)

    def _produce_video(self, source_id: int, item: MediaItem, identity: tuple[int, int] | None) -> None:
        """A video's frames in order, decoded here, resized on the pool; those an earlier run scored are passed over."""
        try:
            video = open_video(item)
        except SourceLost:
            self._put(_done(Skipped(f"cannot open video {item.path}", item.name, source_id, "cannot open this video", identity)))
            return
        scored_through = -1 if self.done is None else self.done.last_frame(source_id, item.name, identity)
        try:
            self.total += max(0, video.frame_count - 1)
            while not self._stop.is_set():
                try:
                    image = video.read()
                except Undecodable as exc:
                    self._put(_done(Skipped(str(exc), item.name)))
                    continue
                if image is None:
                    return
                origin = replace(video.origin or Origin(item.name), identity=identity)
                if origin.frame is not None and origin.frame <= scored_through:
                    self.resumed += 1
                    continue
                frame = Frame(0, image, time.perf_counter(), source=source_id, origin=origin)
                if not self._put(self._pool.submit(self._prepare, frame)):
                    return
        finally:
            video.close()

    def _prepare(self, frame: Frame) -> Frame:
        start = time.perf_counter()
        model_input = resize_frame(frame.image, self.model_hw)
        return replace(frame, model_input=model_input, pre_seconds=time.perf_counter() - start)

    def _load_image(self, source_id: int, item: MediaItem, identity: tuple[int, int] | None) -> Frame | Skipped:
        try:
            image, full_shape = read_image_for(item.path, self.model_hw, verify=self.verify)
        except UnreadableImage as exc:
            return Skipped(f"{item.path}: {exc}", item.name, source_id, str(exc), identity)
        except Exception as exc:  # noqa: BLE001 - whatever a decoder raises, one bad file is one row
            return Skipped(f"{item.path}: {exc}", item.name, source_id, f"cannot decode this file: {exc}", identity)
        return self._prepare(Frame(0, image, time.perf_counter(), source=source_id, full_shape=full_shape,
                                   origin=Origin(item.name, identity=identity)))

    def _take(self, future: Future[Frame | Skipped]) -> Frame | Skipped | None:
        """The frame a task made, numbered in its source; a file that could not be read (counted, warned) as its
        :class:`Skipped`, or None for a video frame that could not be."""
        try:
            result = future.result()
        except Exception as exc:  # noqa: BLE001 - one bad file must not end the run
            result = Skipped(f"cannot read a file: {exc}", None)
        if isinstance(result, Skipped):
            self.undecodable += 1
            note_unreadable(self.unreadable_names, result.name)
            if result.reason != missing_decoder_message():  # said once for them all when reading started
                self.warnings.warn("undecodable frames", result.message)
            return result if result.whole_file else None
        index = self._indices[result.source]
        self._indices[result.source] += 1
        return replace(result, index=index)

    def next_batch(self) -> list[Frame | Skipped] | None:
        """The next ``batch`` frames in order (fewer at the end), with the files that could not be read among them in
        their place; None when every source has ended."""
        entries: list[Frame | Skipped] = []
        frames = 0
        while frames < self.batch and not self._ended:
            future = self._queue.get()
            if future is None:
                self._ended = True
            elif (entry := self._take(future)) is not None:
                entries.append(entry)
                frames += isinstance(entry, Frame)
        return entries or None

    def stop(self) -> None:
        """Stop reading: queued work is dropped, running decodes finish (idempotent)."""
        self._stop.set()
        while True:
            try:
                pending = self._queue.get_nowait()
            except queue.Empty:
                break
            if pending is not None:
                pending.cancel()
        if self._producer.is_alive():
            self._producer.join(timeout=2.0)
        self._pool.shutdown(wait=True, cancel_futures=True)

