"""Image and video files of a folder, and every-K-th-frame video sampling without near-duplicates.

Shared by training on unlabelled frames (``memgaze-train --teacher-model``) and anything else that
reads "a folder of images or videos". OpenCV and numpy only (no torch, no onnx).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from memgaze.errors import fail

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"})
PRESCALE = 2  # resize_frame: INTER_LINEAR to this multiple of the model size first (chosen by memgaze-bench resize)
THUMB_SIZE = 32  # side of the grayscale thumbnail compared to spot near-duplicate frames


def list_media(folder: Path, what: str = "folder", skip: Path | None = None) -> tuple[list[Path], list[Path]]:
    """Image and video files under ``folder`` (recursive, sorted, hidden files and ``skip`` left out)."""
    if not folder.exists():
        fail(f"{what} {folder} does not exist")
    if not folder.is_dir():
        fail(f"{what} {folder} is not a folder")
    files = sorted(
        p for p in folder.rglob("*")
        if p.is_file() and not p.name.startswith(".") and (skip is None or skip not in p.parents)
    )
    return [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES], [p for p in files if p.suffix.lower() in VIDEO_SUFFIXES]


def resize_frame(frame: np.ndarray, size: tuple[int, int], prescale: int = PRESCALE) -> np.ndarray:
    """A BGR frame at ``size`` = (height, width), as the runtime feeds the model; the frame itself when it fits.

    Shrinking a frame at least ``prescale`` times the model size: INTER_LINEAR to ``prescale`` × the size
    (cheap: it reads only the pixels around its sample points), then INTER_AREA (which averages what is
    left). INTER_AREA straight from 1280×720 costs ~40× more for nearly the same model output (see
    ``memgaze-bench resize``). Other shrinks: INTER_AREA; enlarging: INTER_LINEAR. ``prescale=1``: INTER_AREA only."""
    height, width = size
    if frame.shape[:2] == (height, width):
        return frame
    if prescale > 1 and frame.shape[0] >= prescale * height and frame.shape[1] >= prescale * width:
        frame = cv2.resize(frame, (prescale * width, prescale * height), interpolation=cv2.INTER_LINEAR)
    shrinking = frame.shape[0] > height or frame.shape[1] > width
    return cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def thumbnail(frame: np.ndarray) -> np.ndarray:
    """A small float32 grayscale version of a BGR frame, for near-duplicate checks."""
    gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame
    return cv2.resize(gray, (THUMB_SIZE, THUMB_SIZE), interpolation=cv2.INTER_AREA).astype(np.float32)


@dataclass
class VideoSampler:
    """Every ``every``-th frame of a video, skipping a frame whose thumbnail differs from the last
    kept one by less than ``min_change`` (mean absolute grey level, 0–255). Counts what it skipped."""

    every: int
    min_change: float
    sampled: int = 0
    duplicates: int = 0

    def frames(self, path: Path) -> Iterator[tuple[int, np.ndarray]]:
        """``(frame index, BGR frame)`` of the kept frames; nothing for an unreadable video."""
        cap = cv2.VideoCapture(str(path))
        last: np.ndarray | None = None
        index = -1
        try:
            while cap.isOpened() and cap.grab():
                index += 1
                if index % self.every:
                    continue
                ok, frame = cap.retrieve()
                if not ok or frame is None:
                    continue
                self.sampled += 1
                thumb = thumbnail(frame)
                if last is not None and float(np.abs(thumb - last).mean()) < self.min_change:
                    self.duplicates += 1
                    continue
                last = thumb
                yield index, frame
        finally:
            cap.release()
