"""Image and video files of a folder, and every-K-th-frame video sampling without near-duplicates.

Shared by training on unlabelled frames (``memgaze-train --teacher-model``) and anything else that
reads "a folder of images or videos". OpenCV and numpy only (no torch, no onnx).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator

import cv2
import numpy as np

from memgaze.damage import damage, sniff
from memgaze.errors import MemgazeError, fail
from memgaze.heif import HEIF_SUFFIXES, decode_heif

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".pgm", ".ppm"})  # OpenCV reads them
PHOTO_SUFFIXES = IMAGE_SUFFIXES | HEIF_SUFFIXES  # what a photo collection scores: those and phones' HEIC/HEIF/AVIF
VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"})
PRESCALE = 2  # resize_frame: INTER_LINEAR to this multiple of the model size first (chosen by memgaze-bench resize)
THUMB_SIZE = 32  # side of the grayscale thumbnail compared to spot near-duplicate frames


def list_media(folder: Path, what: str = "folder", skip: Path | None = None, recursive: bool = True,
               image_suffixes: frozenset[str] = IMAGE_SUFFIXES) -> tuple[list[Path], list[Path]]:
    """Image (``image_suffixes``) and video files in ``folder`` (and its sub-folders unless ``recursive`` is False),
    sorted; hidden files and folders (a leading dot) and ``skip`` left out."""
    if not folder.exists():
        fail(f"{what} {folder} does not exist")
    if not folder.is_dir():
        fail(f"{what} {folder} is not a folder")
    files = sorted(
        p for p in (folder.rglob("*") if recursive else folder.iterdir())
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
        and (skip is None or skip not in p.parents)
    )
    return [p for p in files if p.suffix.lower() in image_suffixes], [p for p in files if p.suffix.lower() in VIDEO_SUFFIXES]


def resize_frame(frame: np.ndarray, model_hw: tuple[int, int], prescale: int = PRESCALE) -> np.ndarray:
    """A BGR frame at ``model_hw`` = (height, width), as the runtime feeds the model; the frame itself when it fits.

    Shrinking a frame at least ``prescale`` times the model size: INTER_LINEAR to ``prescale`` × the size
    (cheap: it reads only the pixels around its sample points), then INTER_AREA (which averages what is
    left). INTER_AREA straight from 1280×720 costs ~40× more for nearly the same model output (see
    ``memgaze-bench resize``). Other shrinks: INTER_AREA; enlarging: INTER_LINEAR. ``prescale=1``: INTER_AREA only."""
    height, width = model_hw
    if frame.shape[:2] == (height, width):
        return frame
    if prescale > 1 and frame.shape[0] >= prescale * height and frame.shape[1] >= prescale * width:
        frame = cv2.resize(frame, (prescale * width, prescale * height), interpolation=cv2.INTER_LINEAR)
    shrinking = frame.shape[0] > height or frame.shape[1] > width
    return cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


JPEG_SUFFIXES = frozenset({".jpg", ".jpeg"})
# libjpeg decodes a JPEG at 1/8, 1/4 or 1/2 of its size by DCT scaling, for less than a full decode costs
REDUCED_READS = ((8, cv2.IMREAD_REDUCED_COLOR_8), (4, cv2.IMREAD_REDUCED_COLOR_4), (2, cv2.IMREAD_REDUCED_COLOR_2))
SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # start-of-frame (not DHT, JPG, DAC)


def jpeg_wh(source: Path | bytes) -> tuple[int, int] | None:
    """(width, height) from a JPEG's frame header (a file or its bytes), without decoding it; None when the header
    cannot be read."""
    if isinstance(source, bytes):
        return _jpeg_header_wh(io.BytesIO(source))
    with open(source, "rb") as file:
        return _jpeg_header_wh(file)


def _jpeg_header_wh(file: BinaryIO) -> tuple[int, int] | None:
    if file.read(2) != b"\xff\xd8":
        return None
    while True:
        marker = file.read(2)
        if len(marker) < 2 or marker[0] != 0xFF:
            return None
        if marker[1] == 0xFF:  # a fill byte before the marker
            file.seek(-1, 1)
            continue
        if marker[1] == 0x01 or 0xD0 <= marker[1] <= 0xD8:  # markers without a length
            continue
        length = file.read(2)
        if len(length) < 2 or int.from_bytes(length, "big") < 2:
            return None
        if marker[1] in SOF_MARKERS:
            header = file.read(5)  # precision, height, width
            return (int.from_bytes(header[3:5], "big"), int.from_bytes(header[1:3], "big")) if len(header) == 5 else None
        file.seek(int.from_bytes(length, "big") - 2, 1)


def reduced_read(jpeg_wh: tuple[int, int], model_hw: tuple[int, int], prescale: int = PRESCALE) -> tuple[int, int]:
    """(OpenCV read flag, scale divisor) for a JPEG of ``jpeg_wh`` (either orientation): the smallest 1/8, 1/4 or
    1/2 decode that keeps it at least ``prescale`` × a model of input ``model_hw``, else a full decode (1)."""
    short, long = sorted(jpeg_wh)
    need_short, need_long = sorted(prescale * side for side in model_hw)
    return next(((flag, k) for k, flag in REDUCED_READS if short // k >= need_short and long // k >= need_long),
                (cv2.IMREAD_COLOR, 1))


class UnreadableImage(MemgazeError):
    """An image file that cannot be scored: empty, unreadable, truncated or undecodable (the message says which)."""


def read_image_for(path: Path, model_hw: tuple[int, int] | None, prescale: int = PRESCALE,
                   verify: bool = True) -> tuple[np.ndarray, tuple[int, int] | None]:
    """A BGR image for a model of input ``model_hw`` (H, W; None: decoded in full), and its full (H, W) when it was
    decoded smaller, else None; :class:`UnreadableImage` when the file cannot be scored.

    A JPEG is decoded at the smallest 1/8, 1/4 or 1/2 scale that keeps it at least ``prescale`` × the model
    size (:func:`resize_frame` then shrinks it as it would the full image): 2.5× cheaper than a full decode
    of a 1280×720 JPEG, as close to INTER_AREA (``memgaze-bench resize``). HEIC/HEIF/AVIF go through
    :mod:`memgaze.heif`; other files are read in full. ``verify``: refuse a truncated file (:mod:`memgaze.damage`).
    With ``verify=False`` OpenCV reads the file itself, as before the check existed (``memgaze-bench collection``
    measures the difference)."""
    if not verify and path.suffix.lower() not in HEIF_SUFFIXES:
        header_wh = jpeg_wh(path) if model_hw and path.suffix.lower() in JPEG_SUFFIXES and path.is_file() else None
        flag, factor = _read_flag(header_wh, model_hw, prescale)
        image = cv2.imread(str(path), flag)
        if image is None:
            raise UnreadableImage("cannot decode this file as an image")
        return _with_full_shape(image, header_wh, factor)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UnreadableImage(f"cannot read the file: {exc.strerror or exc}") from None
    return decode_image_for(data, model_hw, prescale, verify)


def decode_image_for(data: bytes, model_hw: tuple[int, int] | None, prescale: int = PRESCALE,
                     verify: bool = True) -> tuple[np.ndarray, tuple[int, int] | None]:
    """:func:`read_image_for` on a file's bytes (e.g. read from object storage): the same decode, the same pixels."""
    if not data:
        raise UnreadableImage("empty file (0 bytes)")
    kind = sniff(data)
    if kind == "heif":
        try:
            return decode_heif(data), None
        except ValueError as exc:
            raise UnreadableImage(str(exc)) from None
    if verify and (why := damage(data, kind)) is not None:
        raise UnreadableImage(why)
    header_wh = jpeg_wh(data) if kind == "jpeg" and model_hw else None
    flag, factor = _read_flag(header_wh, model_hw, prescale)
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), flag)
    except cv2.error:
        image = None
    if image is None:
        raise UnreadableImage("cannot decode this file as an image")
    return _with_full_shape(image, header_wh, factor)


def _read_flag(header_wh: tuple[int, int] | None, model_hw: tuple[int, int] | None, prescale: int) -> tuple[int, int]:
    """(OpenCV read flag, scale divisor): reduced for a JPEG of ``header_wh`` where a model of ``model_hw`` allows."""
    return reduced_read(header_wh, model_hw, prescale) if header_wh is not None and model_hw else (cv2.IMREAD_COLOR, 1)


def _with_full_shape(image: np.ndarray, header_wh: tuple[int, int] | None,
                     factor: int) -> tuple[np.ndarray, tuple[int, int] | None]:
    """The decoded image and its full (H, W) when it was decoded at 1/``factor``, else None."""
    if factor == 1 or header_wh is None:
        return image, None
    width, height = header_wh  # the header's, before any EXIF rotation that the decoder applied
    rotated = (image.shape[0] > image.shape[1]) != (height > width)
    return image, (width, height) if rotated else (height, width)


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
