"""Calibration frames from image and video files, sampled deterministically, and the ORT reader."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from onnxruntime.quantization import CalibrationDataReader

from memgaze.console import WarningCounter
from memgaze.errors import fail
from memgaze.media import IMAGE_SUFFIXES, VIDEO_SUFFIXES, list_media, resize_frame

MIN_FRAMES = 8
DEFAULT_COUNT = 128
HELD_OUT_EVERY = 4  # when the source is too small to spare a held-out set, every 4th frame is held out


@dataclass(frozen=True)
class FrameRef:
    """One frame of the source: an image file, or frame ``index`` of a video."""

    path: Path
    index: int | None = None

    @property
    def name(self) -> str:
        return self.path.name if self.index is None else f"{self.path.name}#{self.index}"


@dataclass
class CalibrationSet:
    """Calibration frames and held-out frames, uint8 NHWC BGR at the model input size."""

    frames: np.ndarray
    held_out: np.ndarray
    names: list[str]
    held_out_names: list[str]
    summary: dict[str, Any] = field(default_factory=dict)

    def judging_frames(self, count: int, exactly: bool = False) -> tuple[np.ndarray, str]:
        """At least ``count`` frames to judge a model on (all of them when the source has fewer; ``exactly``: no more
        than ``count`` either): the held-out frames, topped up with calibration frames spread over the set, and a
        phrase that says which they are."""
        held = self.held_out[evenly_spaced(len(self.held_out), count)] if exactly else self.held_out
        extra = max(0, count - len(held))
        if extra == 0:
            return held, "held-out frames"
        picked = self.frames[evenly_spaced(len(self.frames), extra)]
        frames = np.concatenate([held, picked])
        if not len(held):
            return frames, "calibration frames (none could be held out)"
        return frames, f"frames ({len(held)} held out, {len(picked)} from calibration: too few to hold out {count})"


def _video_length(path: Path) -> int:
    cap = cv2.VideoCapture(str(path))
    try:
        return int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if cap.isOpened() else 0
    finally:
        cap.release()


def frame_refs(folder: Path, warnings: WarningCounter) -> list[FrameRef]:
    """Every frame the source offers: one per image, one per video frame."""
    images, videos = list_media(folder, "calibration folder")
    refs = [FrameRef(p) for p in images]
    for video in videos:
        length = _video_length(video)
        if length <= 0:
            warnings.warn("unreadable video", f"cannot read video {video}; skipped")
        refs.extend(FrameRef(video, i) for i in range(length))
    if not refs:
        fail(f"calibration folder {folder} has no image or video files ({', '.join(sorted(IMAGE_SUFFIXES | VIDEO_SUFFIXES))})")
    return refs


def evenly_spaced(total: int, count: int) -> list[int]:
    """``count`` distinct indices spread evenly over ``range(total)`` (all of them if fewer)."""
    if count >= total:
        return list(range(total))
    return sorted({int(round(i)) for i in np.linspace(0, total - 1, count)})


def split_refs(refs: list[FrameRef], count: int, held_out: int) -> tuple[list[FrameRef], list[FrameRef]]:
    """Deterministic split into calibration refs (≤ count) and held-out refs (≤ held_out), disjoint.

    With enough frames the calibration frames are evenly spaced over the source and the held-out
    ones evenly spaced over the rest; otherwise every ``HELD_OUT_EVERY``-th frame is held out.
    """
    if len(refs) >= count + min(held_out, MIN_FRAMES):
        chosen = set(evenly_spaced(len(refs), count))
        rest = [r for i, r in enumerate(refs) if i not in chosen]
        calib = [refs[i] for i in sorted(chosen)]
    else:
        rest = refs[HELD_OUT_EVERY - 1 :: HELD_OUT_EVERY]
        calib = [r for i, r in enumerate(refs) if (i + 1) % HELD_OUT_EVERY][:count]
    return calib, [rest[i] for i in evenly_spaced(len(rest), held_out)]


def read_frames(refs: list[FrameRef], size: tuple[int, int], warnings: WarningCounter) -> tuple[np.ndarray, list[str]]:
    """Decode and resize the referenced frames; unreadable ones are skipped with a warning."""
    frames, names = [], []
    captures: dict[Path, cv2.VideoCapture] = {}
    try:
        for ref in refs:
            if ref.index is None:
                frame = cv2.imread(str(ref.path), cv2.IMREAD_COLOR)
            else:
                cap = captures.setdefault(ref.path, cv2.VideoCapture(str(ref.path)))
                cap.set(cv2.CAP_PROP_POS_FRAMES, ref.index)
                ok, frame = cap.read()
                frame = frame if ok else None
            if frame is None:
                warnings.warn("unreadable frame", f"cannot read {ref.path}" + ("" if ref.index is None else f" frame {ref.index}") + "; skipped")
                continue
            frames.append(resize_frame(frame, size))
            names.append(ref.name)
    finally:
        for cap in captures.values():
            cap.release()
    empty = np.zeros((0, size[0], size[1], 3), np.uint8)
    return (np.stack(frames) if frames else empty), names


def load_calibration(
    folder: Path, size: tuple[int, int], count: int = DEFAULT_COUNT, held_out: int = 128,
    warnings: WarningCounter | None = None, min_frames: int = MIN_FRAMES,
) -> CalibrationSet:
    """Calibration and held-out frames from ``folder``; one-line error below ``min_frames`` usable frames."""
    if count < 1:
        fail(f"--calib-count must be positive, got {count}")
    warnings = warnings or WarningCounter("calibration")
    refs = frame_refs(folder, warnings)
    calib_refs, held_refs = split_refs(refs, count, held_out)
    frames, names = read_frames(calib_refs, size, warnings)
    held, held_names = read_frames(held_refs, size, warnings)
    warnings.summary()
    if len(frames) < min_frames:
        fail(f"calibration needs at least {min_frames} readable frames; {folder} gave {len(frames)}")
    images, videos = list_media(folder, "calibration folder")
    summary = {
        "source": str(folder), "images": len(images), "videos": len(videos), "available_frames": len(refs),
        "frames": len(frames), "held_out": len(held), "size": list(size), "sampling": "evenly spaced",
        "skipped": warnings.total,
    }
    return CalibrationSet(frames, held, names, held_names, summary)


class FrameReader(CalibrationDataReader):
    """ONNX Runtime calibration reader over uint8 frames (users cycled for a personalized graph).

    Batch 1 by default: the histogram calibrators stack per-batch outputs and need equal shapes.
    """

    def __init__(self, frames: np.ndarray, users: np.ndarray | None = None, batch: int = 1) -> None:
        self.frames, self.users, self.batch = frames, users, batch
        self.rewind()

    def rewind(self) -> None:
        self._start = 0

    def __len__(self) -> int:
        return -(-len(self.frames) // self.batch)

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._start >= len(self.frames):
            return None
        stop = self._start + self.batch
        feed = {"image": np.ascontiguousarray(self.frames[self._start : stop])}
        if self.users is not None:
            feed["user"] = self.users[self._start : stop]
        self._start = stop
        return feed
