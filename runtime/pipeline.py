"""capture → pre (OpenCV resize) → infer → post (heatmap peak) → sinks, with per-stage timings and a summary."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from rich.table import Column, Table

from memgaze.console import console
from memgaze.media import resize_frame
from memgaze.runtime.backends.base import Backend
from memgaze.runtime.capture import Capture
from memgaze.runtime.overlay import annotate
from memgaze.runtime.sinks import FrameResult, Sink
from memgaze.runtime.timing import STAGES, RateMeter, StageTimes


def preprocess(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """BGR frame → uint8 batch ``[1, H, W, 3]`` at the model's ``size`` (H, W); all the work is in OpenCV."""
    return resize_frame(frame, size)[np.newaxis]


def heatmap_peak(heatmap: np.ndarray, frame_shape: tuple[int, ...]) -> tuple[int, int]:
    """Argmax of the small map ``[h, w]``, as the (x, y) pixel at the centre of that cell in the frame."""
    h, w = heatmap.shape
    row, col = np.unravel_index(int(np.argmax(heatmap)), (h, w))
    return int((col + 0.5) * frame_shape[1] / w), int((row + 0.5) * frame_shape[0] / h)


@dataclass
class RunSummary:
    """What a run did, for the final table."""

    frames: int = 0
    seconds: float = 0.0
    dropped: int = 0
    reconnects: int = 0
    undecodable: int = 0
    end_reason: str = ""
    timings: StageTimes = field(default_factory=StageTimes)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def print(self) -> None:
        """The summary: frames and FPS, p50/p99 per stage, dropped/reconnects/undecodable, why the run ended."""
        console.print(
            f"memgaze-run: {self.frames} frames in {self.seconds:.2f} s, {self.fps:.1f} FPS"
            + (f" ({self.end_reason})" if self.end_reason else "")
        )
        table = Table("stage", Column("p50 ms", justify="right"), Column("p99 ms", justify="right"))
        for stage in self.timings.stages:
            p50, p99 = self.timings.percentiles_ms(stage)
            table.add_row(stage, f"{p50:.2f}", f"{p99:.2f}")
        console.print(table)
        console.print(f"dropped {self.dropped}, reconnects {self.reconnects}, undecodable {self.undecodable}")


class Pipeline:
    """Scores frames from ``capture`` with ``backend`` and hands each result to every sink."""

    def __init__(
        self,
        backend: Backend,
        capture: Capture,
        sinks: list[Sink],
        *,
        user: int | None = None,
        max_frames: int | None = None,
    ) -> None:
        self.backend = backend
        self.capture = capture
        self.sinks = sinks
        self.users = None if user is None else np.array([user], np.int64)
        self.max_frames = max_frames
        self.overlay = any(sink.wants_overlay for sink in sinks)
        self.summary = RunSummary()
        self.rate = RateMeter()

    def step(self) -> FrameResult | None:
        """Process one frame; None when the source has ended."""
        times = self.summary.timings
        with times.measure("capture"):
            frame = self.capture.get()
        if frame is None:
            return None
        with times.measure("pre"):
            batch = preprocess(frame.image, self.backend.input_size)
        with times.measure("infer"):
            scores, heatmaps = self.backend.infer(batch, self.users)
        with times.measure("post"):
            heatmap = heatmaps[0, 0]
            done = time.perf_counter()
            result = FrameResult(
                index=frame.index,
                t=frame.captured - self._start,
                score=float(scores[0]),
                peak=heatmap_peak(heatmap, frame.image.shape),
                latency_ms=(done - frame.captured) * 1000.0,
                frame=frame.image,
                heatmap=heatmap,
            )
        with times.measure("sink"):
            fps = self.rate.tick()
            annotated = annotate(frame.image, heatmap, result.score, result.peak, fps) if self.overlay else None
            for sink in self.sinks:
                sink.write(result, annotated)
        return result

    def run(self) -> RunSummary:
        """Run until the source ends, ``max_frames``, a sink asks to stop, or Ctrl-C; always prints the summary."""
        self._start = time.perf_counter()
        self.capture.start()
        try:
            while self.max_frames is None or self.summary.frames < self.max_frames:
                if self.step() is None:
                    break
                self.summary.frames += 1
                stop = next((sink.stop_reason for sink in self.sinks if sink.stop_reason), None)
                if stop:
                    self.summary.end_reason = stop
                    break
            else:
                self.summary.end_reason = f"reached --max-frames {self.max_frames}"
        except KeyboardInterrupt:
            self.summary.end_reason = "interrupted (Ctrl-C)"
        finally:
            self.summary.seconds = time.perf_counter() - self._start
            self.capture.stop()
            for sink in self.sinks:
                sink.close()
            self.summary.dropped = self.capture.dropped
            self.summary.reconnects = self.capture.reconnects
            self.summary.undecodable = self.capture.undecodable
            self.summary.end_reason = self.summary.end_reason or self.capture.end_reason
            self.summary.print()
        return self.summary
