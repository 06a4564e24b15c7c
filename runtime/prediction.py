"""One scored frame (:class:`Prediction`), a file that could not be scored (:class:`Failure`), and the rows both
become in ``memgaze-run``'s JSON lines and CSV."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np


@dataclass(slots=True)
class Prediction:
    """The model's answer for one image or frame.

    ``score``: memorability in [0, 1]; ``heatmap``: float32 ``[h, w]`` (the model's map, summing to 1);
    ``peak``: the heatmap's maximum as (x, y) pixels of the full-size image (a folder's JPEGs are decoded
    smaller where the model allows, so ``image`` may be smaller than the photo); ``timings``: milliseconds per stage
    (capture = time the inference thread waited for the frame, pre = resize, infer, post; a batch's
    infer and post are shared by its frames). Streamed frames also carry ``index`` (the frame's number
    in its source), ``source`` (the source's position in the list given, from 0), ``captured``
    (``time.perf_counter()`` when it was read), ``t`` (seconds since the stream started) and
    ``latency_ms`` (capture to result). Frames of files also carry ``file`` (the file's path relative to its
    source's root: a folder, a glob's fixed part, a list's folder) and, for a video, ``file_frame`` (the frame's
    number in that file) and ``timestamp`` (its time in the file, seconds). For :meth:`Model.predict` ``index`` is
    the image's position. ``file_bytes`` and ``file_mtime_ns`` are the file's size and modification time when it was
    read (what a resumed run matches). ``image`` is the decoded image only when it was asked for (``keep_images``).
    """

    score: float
    heatmap: np.ndarray = field(repr=False)
    peak: tuple[int, int]
    timings: dict[str, float]
    index: int = 0
    source: int | None = None
    captured: float | None = None
    t: float | None = None
    latency_ms: float | None = None
    image: np.ndarray | None = field(default=None, repr=False)
    file: str | None = None
    file_frame: int | None = None
    timestamp: float | None = None
    file_bytes: int | None = None
    file_mtime_ns: int | None = None

    def record(self) -> dict[str, object]:
        """The JSON line ``memgaze-run --jsonl`` writes for this frame (:data:`RECORD_KEYS`, those that apply).

        A live frame: ``source``, ``frame`` (its number in the source), ``t``, ``score``, ``peak``, ``latency_ms``.
        A photo: ``file`` instead of ``frame``. A video file's frame: ``file``, ``frame`` (its number in the file)
        and ``timestamp`` (seconds into the file)."""
        identity: dict[str, object] = {"frame": self.index} if self.file is None else {"file": self.file}
        if self.file_frame is not None:
            identity.update(frame=self.file_frame, timestamp=self.timestamp)
        if self.file is not None:
            identity.update(bytes=self.file_bytes, mtime_ns=self.file_mtime_ns)
        return {
            "source": self.source,
            **identity,
            "t": None if self.t is None else round(self.t, 4),
            "score": round(self.score, 6),
            "peak": [self.peak[0], self.peak[1]],
            "latency_ms": None if self.latency_ms is None else round(self.latency_ms, 3),
        }


@dataclass(frozen=True)
class Failure:
    """A file of a collection that could not be scored (empty, unreadable, truncated, undecodable): its row has no
    score, only the ``error``. ``source``, ``file``, ``file_bytes``, ``file_mtime_ns`` as in :class:`Prediction`; ``t``
    seconds since the run started."""

    source: int
    file: str
    error: str
    t: float
    file_bytes: int | None = None
    file_mtime_ns: int | None = None

    def record(self) -> dict[str, object]:
        """The JSON line of a file without a score: ``source``, ``file``, ``bytes``, ``mtime_ns``, ``t``, ``error``."""
        return {"source": self.source, "file": self.file, "bytes": self.file_bytes, "mtime_ns": self.file_mtime_ns,
                "t": round(self.t, 4), "score": None, "error": self.error}


# Every key a record can have, in order (the columns of memgaze-run --csv; peak is split into x and y there).
RECORD_KEYS = ("source", "file", "frame", "timestamp", "bytes", "mtime_ns", "t", "score", "peak", "latency_ms", "error")


def heatmap_peak(heatmap: np.ndarray, frame_shape: tuple[int, ...]) -> tuple[int, int]:
    """Argmax of the small map ``[h, w]``, as the (x, y) pixel at the centre of that cell in the frame."""
    h, w = heatmap.shape
    row, col = divmod(int(heatmap.argmax()), w)
    return int((col + 0.5) * frame_shape[1] / w), int((row + 0.5) * frame_shape[0] / h)


def engine_predictions(scores: np.ndarray, heatmaps: np.ndarray, shapes: Sequence[tuple[int, ...]],
                       fields: Sequence[dict[str, Any]]) -> list[Prediction]:
    """One :class:`Prediction` per row of an engine call's outputs (``scores`` ``[N]``, ``heatmaps`` ``[N, 1, h, w]``):
    its score, its map and the map's peak in the frame of shape ``shapes[i]``; ``fields[i]`` gives the rest."""
    return [Prediction(score=score, heatmap=heatmap, peak=heatmap_peak(heatmap, shape), **extra)
            for score, heatmap, shape, extra in zip(scores.tolist(), heatmaps[:, 0], shapes, fields, strict=True)]
