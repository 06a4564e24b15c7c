"""The capture threads: each reads one source ahead of the inference thread and resizes its frames there.

Live sources (cameras, URLs, pipelines): only the NEWEST frame is kept; a frame overwritten before
the inference thread took it is counted as dropped, never queued, so latency never grows. A live
source that stops is reopened with exponential backoff (counted), up to a bounded number of
attempts, then that source ends cleanly with a message.

Files and folders: every frame is read in order at processing speed (the thread waits for the
inference thread to take each frame), so nothing is dropped; the end of the file ends the source.

The resize to the model's input (``prepare``) runs in a second thread per source, between the
reader and the inference thread, with the same newest-frame (live) or every-frame (file) hand-off.
So decoding frame N+2, resizing frame N+1 and inferring frame N overlap (OpenCV and the engines
release the GIL), and the slowest of the three stages alone sets the frame rate; with the resize in
the reader thread instead, decoding + resize would (``memgaze-bench pipeline``).

A :class:`CaptureGroup` shares one condition variable between the captures of several sources,
so the inference thread can wait for "any source has a frame" and batch the newest of each.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace
from typing import Callable, Iterator

import numpy as np

from memgaze.console import WarningCounter, console
from memgaze.runtime.sources import FrameSource, Origin, SourceLost, Undecodable

NAMED_UNREADABLE = 5  # unreadable files named in a run's summary (all are counted)


@dataclass(frozen=True)
class Frame:
    """One captured frame: its number in its source (from 0), the BGR image, when it was read
    (``time.perf_counter``), the model input made from it, the resize time (s), the source's id, the
    frame's full (H, W) when it was decoded smaller (peaks are given in full-size pixels), and the file
    it came from (None for live sources)."""

    index: int
    image: np.ndarray
    captured: float
    model_input: np.ndarray | None = None
    pre_seconds: float = 0.0
    source: int = 0
    full_shape: tuple[int, int] | None = None
    origin: Origin | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        """The frame's (H, W, ...) at full size."""
        return self.full_shape or self.image.shape


@dataclass(frozen=True)
class ReconnectPolicy:
    """Reopen a lost live source after base, 2×base, 4×base… seconds (capped), ``attempts`` times."""

    attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 8.0

    def delays(self) -> Iterator[float]:
        for attempt in range(self.attempts):
            yield min(self.base_delay * 2**attempt, self.max_delay)


class Capture:
    """Reads ``source`` in a daemon thread and prepares its frames in another; :meth:`get` hands them on.

    ``prepare`` (the resize to the model input) runs in the second thread; ``source_id`` tags the frames;
    ``condition`` is shared with the other captures of a :class:`CaptureGroup`."""

    def __init__(
        self,
        source: FrameSource,
        *,
        policy: ReconnectPolicy | None = None,
        warnings: WarningCounter | None = None,
        prepare: Callable[[np.ndarray], np.ndarray] | None = None,
        source_id: int = 0,
        condition: threading.Condition | None = None,
    ) -> None:
        self.source = source
        self.live = source.live
        self.policy = policy or ReconnectPolicy()
        self.warnings = warnings or WarningCounter("frames")
        self.prepare = prepare
        self.source_id = source_id
        self.read = 0
        self.dropped = 0
        self.reconnects = 0
        self.undecodable = 0
        self.unreadable_names: list[str] = []  # the first NAMED_UNREADABLE files skipped
        self.end_reason = ""
        self._raw: Frame | None = None  # read, not yet prepared
        self._slot: Frame | None = None  # prepared, for the inference thread
        self._read_done = False
        self._ended = False
        self._cond = condition or threading.Condition()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, name=f"memgaze-capture-{source_id}", daemon=True),
            threading.Thread(target=self._prepare_loop, name=f"memgaze-prepare-{source_id}", daemon=True),
        ]

    def start(self) -> Capture:
        for thread in self._threads:
            thread.start()
        return self

    def get(self, timeout: float | None = None) -> Frame | None:
        """The next frame (live: the newest one); None when the source has ended (or ``timeout`` passed)."""
        with self._cond:
            self._cond.wait_for(lambda: self._slot is not None or self._ended, timeout)
            return self.take_locked()

    def take_locked(self) -> Frame | None:
        """The waiting frame or None, without blocking; the caller holds the shared condition."""
        frame, self._slot = self._slot, None
        if frame is not None:
            self._cond.notify_all()
        return frame

    @property
    def has_frame_locked(self) -> bool:
        """A frame is waiting (the caller holds the shared condition)."""
        return self._slot is not None

    @property
    def ended_locked(self) -> bool:
        """The source has ended and its last frame was taken (the caller holds the shared condition)."""
        return self._ended and self._slot is None

    @property
    def ended(self) -> bool:
        with self._cond:
            return self.ended_locked

    def stop(self, timeout: float = 2.0) -> None:
        """Ask the thread to stop, wait for it a little, and release the source."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout)
        if not self._threads[0].is_alive():
            self.source.close()

    def _hand_over(self, frame: Frame, slot: str) -> None:
        """Put ``frame`` in ``slot`` (``_raw`` or ``_slot``): live, replacing (and counting) an untaken one;
        file, after the previous one was taken. The caller holds the condition."""
        if self.live:
            if getattr(self, slot) is not None:
                self.dropped += 1
        else:
            self._cond.wait_for(lambda: getattr(self, slot) is None or self._stop.is_set())
        setattr(self, slot, frame)
        self._cond.notify_all()

    def _publish(self, image: np.ndarray) -> None:
        frame = Frame(self.read, image, time.perf_counter(), source=self.source_id, full_shape=self.source.full_shape,
                      origin=self.source.origin)
        self.read += 1
        with self._cond:
            self._hand_over(frame, "_raw")

    def _prepare_loop(self) -> None:
        """Second thread: take each read frame, resize it (``prepare``), hand it to the inference thread."""
        try:
            while True:
                with self._cond:
                    self._cond.wait_for(lambda: self._raw is not None or self._read_done or self._stop.is_set())
                    frame, self._raw = self._raw, None
                    if frame is None:
                        return
                    self._cond.notify_all()
                if self.prepare is not None:
                    start = time.perf_counter()
                    model_input = self.prepare(frame.image)
                    frame = replace(frame, model_input=model_input, pre_seconds=time.perf_counter() - start)
                with self._cond:
                    if self._stop.is_set():
                        return
                    self._hand_over(frame, "_slot")
        except Exception as exc:  # an OpenCV error must end the source with a message, not kill the thread silently
            self.end_reason = f"preparing frames stopped: {exc}"
            self._stop.set()
        finally:
            with self._cond:
                self._ended = True
                self._cond.notify_all()

    def _reconnect(self, error: SourceLost) -> bool:
        """Reopen the lost source with backoff; False when every attempt failed or we were stopped."""
        for attempt, delay in enumerate(self.policy.delays(), 1):
            console.print(f"{error}; reconnecting in {delay:.1f} s (attempt {attempt}/{self.policy.attempts})")
            if self._stop.wait(delay):
                return False
            try:
                self.source.open()
            except SourceLost:
                continue
            self.reconnects += 1
            console.print(f"reconnected to {self.source.spec}")
            return True
        self.end_reason = f"{self.source.spec} lost; gave up after {self.policy.attempts} reconnect attempts"
        return False

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    image = self.source.read()
                except Undecodable as exc:
                    self.undecodable += 1
                    note_unreadable(self.unreadable_names, exc.name)
                    self.warnings.warn("undecodable frames", str(exc))
                    continue
                except SourceLost as exc:
                    if self.live and self._reconnect(exc):
                        continue
                    self.end_reason = self.end_reason or str(exc)
                    break
                if image is None:
                    self.end_reason = f"end of {self.source.spec}"
                    break
                self._publish(image)
        except Exception as exc:  # an OpenCV error must end the source with a message, not kill the thread silently
            self.end_reason = f"capture stopped: {exc}"
        finally:
            with self._cond:
                self._read_done = True
                self._cond.notify_all()


def note_unreadable(names: list[str], name: str | None) -> None:
    """Keep the name of an unreadable file for the summary, up to NAMED_UNREADABLE of them."""
    if name is not None and len(names) < NAMED_UNREADABLE and name not in names:
        names.append(name)


class CaptureGroup:
    """The captures of several sources behind one condition; :meth:`next_batch` gives the newest frame of each.

    A batch holds one frame of every source that has one ready. It waits until every file or folder
    source still running has delivered its next frame (they are read at processing speed, so none is
    skipped and batches stay in step), and until at least one source has a frame."""

    def __init__(
        self,
        sources: list[FrameSource],
        *,
        policy: ReconnectPolicy | None = None,
        warnings: WarningCounter | None = None,
        prepare: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> None:
        self._cond = threading.Condition()
        self.captures = [
            Capture(source, policy=policy, warnings=warnings, prepare=prepare, source_id=index, condition=self._cond)
            for index, source in enumerate(sources)
        ]

    def start(self) -> CaptureGroup:
        for capture in self.captures:
            capture.start()
        return self

    def _ready_locked(self) -> bool:
        running = [c for c in self.captures if not c.ended_locked]
        if not running:
            return True
        files_ready = all(c.has_frame_locked for c in running if not c.live)
        return files_ready and any(c.has_frame_locked for c in running)

    def next_batch(self) -> list[Frame] | None:
        """The newest frame of each source that has one, in source order, once one is ready; None when all ended."""
        with self._cond:
            self._cond.wait_for(self._ready_locked)
            if all(c.ended_locked for c in self.captures):
                return None
            return [frame for c in self.captures if (frame := c.take_locked()) is not None]

    def stop(self) -> None:
        for capture in self.captures:
            capture.stop()

    @property
    def dropped(self) -> int:
        return sum(c.dropped for c in self.captures)

    @property
    def reconnects(self) -> int:
        return sum(c.reconnects for c in self.captures)

    @property
    def undecodable(self) -> int:
        return sum(c.undecodable for c in self.captures)

    @property
    def unreadable_names(self) -> list[str]:
        return [name for c in self.captures for name in c.unreadable_names][:NAMED_UNREADABLE]

    @property
    def total(self) -> int | None:
        """Frames expected in all (unknown for live sources, so None here)."""
        return None

    @property
    def end_reason(self) -> str:
        return "; ".join(c.end_reason for c in self.captures if c.end_reason)
