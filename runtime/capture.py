"""The capture thread: reads a source ahead of the pipeline.

Live sources (camera, URL, pipeline): only the NEWEST frame is kept; a frame overwritten before
the pipeline took it is counted as dropped, never queued, so latency never grows. A live
source that stops is reopened with exponential backoff (counted), up to a bounded number of
attempts, then the run ends cleanly with a message.

Files and folders: every frame is read in order at processing speed (the thread waits for the
pipeline to take each frame), so nothing is dropped; the end of the file ends the run.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from memgaze.console import WarningCounter, console
from memgaze.runtime.sources import FrameSource, SourceLost, Undecodable


@dataclass(frozen=True)
class Frame:
    """One captured frame: its number (from 0), the BGR image, and when it was read (``time.perf_counter``)."""

    index: int
    image: np.ndarray
    captured: float


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
    """Reads ``source`` in a daemon thread; :meth:`get` hands frames to the pipeline."""

    def __init__(
        self,
        source: FrameSource,
        *,
        policy: ReconnectPolicy | None = None,
        warnings: WarningCounter | None = None,
    ) -> None:
        self.source = source
        self.live = source.spec.live
        self.policy = policy or ReconnectPolicy()
        self.warnings = warnings or WarningCounter("frames")
        self.read = 0
        self.dropped = 0
        self.reconnects = 0
        self.undecodable = 0
        self.end_reason = ""
        self._slot: Frame | None = None
        self._ended = False
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="memgaze-capture", daemon=True)

    def start(self) -> Capture:
        self._thread.start()
        return self

    def get(self, timeout: float | None = None) -> Frame | None:
        """The next frame (live: the newest one); None when the source has ended (or ``timeout`` passed)."""
        with self._cond:
            self._cond.wait_for(lambda: self._slot is not None or self._ended, timeout)
            frame, self._slot = self._slot, None
            self._cond.notify_all()
            return frame

    @property
    def ended(self) -> bool:
        with self._cond:
            return self._ended and self._slot is None

    def stop(self, timeout: float = 2.0) -> None:
        """Ask the thread to stop, wait for it a little, and release the source."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)
        if not self._thread.is_alive():
            self.source.close()

    def _publish(self, image: np.ndarray) -> None:
        frame = Frame(self.read, image, time.perf_counter())
        self.read += 1
        with self._cond:
            if self.live:
                if self._slot is not None:
                    self.dropped += 1
            else:
                self._cond.wait_for(lambda: self._slot is None or self._stop.is_set())
            self._slot = frame
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
        except Exception as exc:  # an OpenCV error must end the run with a message, not kill the thread silently
            self.end_reason = f"capture stopped: {exc}"
        finally:
            with self._cond:
                self._ended = True
                self._cond.notify_all()
