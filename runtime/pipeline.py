"""The inference loop: capture threads (read + resize) → batch of the newest frames → infer → predictions,
and the ``memgaze-run`` loop that hands each prediction to the sinks, with per-stage timings and a summary.

The inference thread does no per-pixel work: frames arrive already resized by their capture thread,
so the resize of frame N+1 overlaps the inference of frame N.
"""

from __future__ import annotations

import contextlib
import functools
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Iterator, cast

import numpy as np
from rich.table import Column, Table

from memgaze.console import WarningCounter, console
from memgaze.errors import fail
from memgaze.media import resize_frame
from memgaze.runtime.backends.base import Backend
from memgaze.runtime.capture import CaptureGroup, Frame, ReconnectPolicy
from memgaze.runtime.overlay import annotate
from memgaze.runtime.prediction import Failure, Prediction, engine_predictions, heatmap_peak
from memgaze.runtime.reader import CollectionReader, Done, Skipped
from memgaze.runtime.sinks import Sink
from memgaze.runtime.sources import FrameSource, Origin
from memgaze.runtime.timing import RateMeter, StageTimes


NO_ORIGIN = Origin("")  # a live frame: no file


def batch_of(inputs: list[np.ndarray]) -> np.ndarray:
    """Model inputs ``[H, W, 3]`` → one ``[N, H, W, 3]`` batch (no copy for a single frame)."""
    return inputs[0][np.newaxis] if len(inputs) == 1 else np.stack(inputs)


@dataclass
class RunSummary:
    """What a run did, for the final table."""

    frames: int = 0
    seconds: float = 0.0
    dropped: int = 0
    reconnects: int = 0
    undecodable: int = 0
    unreadable_names: list[str] = field(default_factory=list)
    resumed: int = 0
    end_reason: str = ""
    timings: StageTimes = field(default_factory=StageTimes)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def print(self, stages: bool = True) -> None:
        """The summary: frames and FPS, p50/p99 per stage (unless not ``stages``), dropped/reconnects/undecodable
        (naming the first unreadable files), why the run ended."""
        console.print(
            f"memgaze-run: {self.frames} frames in {self.seconds:.2f} s, {self.fps:.1f} FPS"
            + (f" ({self.end_reason})" if self.end_reason else ""), soft_wrap=True,
        )
        if stages:
            table = Table("stage", Column("p50 ms", justify="right"), Column("p99 ms", justify="right"))
            for stage in self.timings.stages:
                p50, p99 = self.timings.percentiles_ms(stage)
                table.add_row(stage, f"{p50:.2f}", f"{p99:.2f}")
            console.print(table)
        named = ""
        if self.unreadable_names:
            more = ", …" if self.undecodable > len(self.unreadable_names) else ""
            named = f" ({', '.join(self.unreadable_names)}{more})"
        resumed = f", already scored by an earlier run {self.resumed}" if self.resumed else ""
        console.print(f"dropped {self.dropped}, reconnects {self.reconnects}, undecodable {self.undecodable}{named}{resumed}",
                      soft_wrap=True)


class Stream:
    """Predictions for the frames of one or more sources, one engine call per batch.

    With ``batch`` set and every source a file or collection, the files are read in order, decoded on ``threads``
    threads and scored ``batch`` at a time (:class:`memgaze.runtime.reader.CollectionReader`); otherwise each
    source has its capture threads and a batch is the newest frame of each (live sources keep only their newest
    frame; :class:`memgaze.runtime.capture.CaptureGroup`). Iterate it once; it stops at the end of every source,
    after ``max_frames`` frames, or on :meth:`close` (also called when the iteration ends). ``summary`` holds
    frames, seconds, drops and stage timings. Iterating gives the :class:`Prediction` of every frame scored;
    :meth:`rows` gives those and, in their place, a :class:`Failure` for each file of a collection that could not be
    read. ``keep_images``: each prediction carries its decoded image (for overlays and thumbnails). ``done`` and
    ``verify``: as :class:`memgaze.runtime.reader.CollectionReader` takes them."""

    def __init__(
        self,
        backend: Backend,
        sources: list[FrameSource],
        *,
        user: int | None = None,
        max_frames: int | None = None,
        policy: ReconnectPolicy | None = None,
        warnings: WarningCounter | None = None,
        batch: int | None = None,
        threads: int | None = None,
        keep_images: bool = False,
        done: Done | None = None,
        verify: bool = True,
    ) -> None:
        self.backend = backend
        self.sources = sources
        self.user = user
        self.max_frames = max_frames
        self.keep_images = keep_images
        self.warnings = warnings or WarningCounter("frames")
        self.group: CaptureGroup | CollectionReader
        if batch is not None and not any(source.live for source in sources):
            self.group = CollectionReader(sources, model_hw=backend.input_size, batch=batch, threads=threads, warnings=self.warnings,
                                          done=done, verify=verify)
        else:
            prepare = functools.partial(resize_frame, model_hw=backend.input_size)
            self.group = CaptureGroup(sources, policy=policy, warnings=self.warnings, prepare=prepare)
        self.summary = RunSummary()
        self.started = 0.0
        self._iterator: Iterator[Prediction | Failure] | None = None
        self._closed = False

    def rows(self) -> Iterator[Prediction | Failure]:
        """Every row in order: a :class:`Prediction` per frame scored, a :class:`Failure` per file that could not be
        read (collections)."""
        if self._iterator is None:
            self._iterator = self._rows()
        return self._iterator

    def __iter__(self) -> Iterator[Prediction]:
        return (row for row in self.rows() if isinstance(row, Prediction))

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def progress(self) -> tuple[int, int | None]:
        """(frames done: scored or skipped, frames expected in all or None when unknown, e.g. for live sources)."""
        total = self.group.total
        if total is not None and self.max_frames is not None:
            total = min(total, self.max_frames)
        return self.summary.frames + self.group.undecodable + self.resumed, total

    def skip_scored(self, done: Done) -> None:
        """Pass over what an earlier run scored (:func:`memgaze.runtime.resume.prepare_resume`); before iterating.
        One-line error unless every source is a collection read in batches."""
        if not isinstance(self.group, CollectionReader):
            fail("resuming works on collections of files (folders, globs, lists, files), not on live sources")
        self.group.done = done

    @property
    def resumed(self) -> int:
        """Files (and video frames) passed over because an earlier run scored them."""
        return self.group.resumed if isinstance(self.group, CollectionReader) else 0

    def _users(self, count: int) -> np.ndarray | None:
        return None if self.user is None else np.full(count, self.user, np.int64)

    def _rows(self) -> Iterator[Prediction | Failure]:
        self.started = time.perf_counter()
        self.group.start()
        try:
            while self.max_frames is None or self.summary.frames < self.max_frames:
                waited = time.perf_counter()
                entries = self.group.next_batch()
                if entries is None:
                    break
                kept = self._within_max_frames(entries)
                scored = iter(self._score([e for e in kept if isinstance(e, Frame)], time.perf_counter() - waited))
                for entry in kept:
                    yield next(scored) if isinstance(entry, Frame) else self._failure(entry)
            else:
                self.summary.end_reason = f"reached --max-frames {self.max_frames}"
        finally:
            self.close()

    def _within_max_frames(self, entries: list[Frame] | list[Frame | Skipped]) -> list[Frame | Skipped]:
        """``entries`` up to the frame that reaches ``max_frames``."""
        room = None if self.max_frames is None else self.max_frames - self.summary.frames
        kept: list[Frame | Skipped] = []
        for entry in entries:
            if isinstance(entry, Frame):
                if room is not None and room <= 0:
                    break
                room = None if room is None else room - 1
            kept.append(entry)
        return kept

    def _failure(self, skipped: Skipped) -> Failure:
        identity = skipped.identity or (None, None)
        return Failure(source=skipped.source or 0, file=skipped.name or "", error=skipped.reason,
                       t=time.perf_counter() - self.started, file_bytes=identity[0], file_mtime_ns=identity[1])

    def _score(self, frames: list[Frame], waited: float) -> list[Prediction]:
        if not frames:
            return []
        times = self.summary.timings
        times.add("capture", waited)
        start = time.perf_counter()
        inputs = [cast(np.ndarray, f.model_input) for f in frames]  # the capture prepares every frame it yields
        scores, heatmaps = self.backend.infer(batch_of(inputs), self._users(len(frames)))
        inferred = time.perf_counter()
        shared = {"capture": waited * 1000.0, "infer": (inferred - start) * 1000.0}
        fields = []
        for frame in frames:
            times.add("pre", frame.pre_seconds)
            origin = frame.origin or NO_ORIGIN
            identity = origin.identity or (None, None)
            fields.append({
                "timings": {**shared, "pre": frame.pre_seconds * 1000.0}, "index": frame.index, "source": frame.source,
                "captured": frame.captured, "t": frame.captured - self.started,
                "image": frame.image if self.keep_images else None, "file": origin.file or None, "file_frame": origin.frame,
                "timestamp": origin.timestamp, "file_bytes": identity[0], "file_mtime_ns": identity[1],
            })
        predictions = engine_predictions(scores, heatmaps, [frame.shape for frame in frames], fields)
        done = time.perf_counter()
        for prediction in predictions:
            prediction.latency_ms = (done - prediction.captured) * 1000.0  # type: ignore[operator]
            prediction.timings["post"] = (done - inferred) * 1000.0
        times.add("infer", inferred - start)
        times.add("post", done - inferred)
        self.summary.frames += len(frames)
        return predictions

    def close(self) -> None:
        """Stop the capture threads and release the sources (idempotent); fills in the summary."""
        if self._closed:
            return
        self._closed = True
        self.group.stop()
        summary = self.summary
        summary.seconds = time.perf_counter() - self.started if self.started else 0.0
        summary.dropped = self.group.dropped
        summary.reconnects = self.group.reconnects
        summary.undecodable = self.group.undecodable
        summary.unreadable_names = self.group.unreadable_names
        summary.resumed = self.resumed
        summary.end_reason = summary.end_reason or self.group.end_reason


@contextlib.contextmanager
def whole_row() -> Iterator[None]:
    """Ctrl-C (SIGINT) and SIGTERM wait until the block ends: every sink gets the row being written, so JSON lines,
    CSV rows and the gallery all end on the same frame. Then the signal is delivered as it would have been."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = {signum: signal.signal(signum, lambda number, frame: received.append(number))
                for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for number in received:
            signal.raise_signal(number)


class Pipeline:
    """``memgaze-run``'s loop: every prediction of ``stream`` to every sink; overlay sinks show source 0, with
    ``map_label`` saying what the heatmap is."""

    def __init__(self, stream: Stream, sinks: list[Sink], map_label: str = "", stages: bool = True) -> None:
        self.stream = stream
        self.sinks = sinks
        self.map_label = map_label
        self.stages = stages  # print the per-stage table in the summary
        self.overlay = any(sink.wants_overlay for sink in sinks)
        stream.keep_images = stream.keep_images or self.overlay or any(sink.wants_images for sink in sinks)
        self.rate = RateMeter()

    def _write(self, prediction: Prediction) -> None:
        annotated = None
        if prediction.source == 0 and self.overlay:
            fps = self.rate.tick()
            assert prediction.image is not None
            marker = heatmap_peak(prediction.heatmap, prediction.image.shape)  # the peak in this image's pixels
            annotated = annotate(prediction.image, prediction.heatmap, prediction.score, marker, fps, self.map_label)
        for sink in self.sinks:
            if annotated is not None or not sink.wants_overlay:
                sink.write(prediction, annotated)

    def run(self) -> RunSummary:
        """Run until the sources end, ``max_frames``, a sink asks to stop, or Ctrl-C; always prints the summary."""
        summary = self.stream.summary
        try:
            for row in self.stream.rows():
                start = time.perf_counter()
                with whole_row():
                    if isinstance(row, Prediction):
                        self._write(row)
                    else:
                        for sink in self.sinks:
                            sink.write_failure(row)
                summary.timings.add("sink", time.perf_counter() - start)
                stop = next((sink.stop_reason for sink in self.sinks if sink.stop_reason), None)
                if stop:
                    summary.end_reason = stop
                    break
        except KeyboardInterrupt:
            summary.end_reason = "interrupted (Ctrl-C)"
        finally:
            self.stream.close()
            for sink in self.sinks:
                sink.close()
            summary.print(self.stages)
        return summary
