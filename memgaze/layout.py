"""The LaMem dataset layout: paths, the split reader, the cheap image-file check done when a split
is indexed, and the one image decoder (cached and uncached items must be bit-identical).

Split files are ``ROOT/splits/{train,val,test}_<k>.txt`` with lines ``<name> <score> [more columns
ignored]`` (scores in [0, 1]; ``#`` comments and blank lines ignored). ``k`` numbers the split: LaMem
ships five, ``train_1.txt`` … ``train_5.txt`` with their ``val_k`` and ``test_k`` (its release folder
``lamem/`` is such a root as it is); SUN memorability, MemCat and FIGRIM converted by
``python -m memgaze.train.convert`` are read by the same code. torch-free: training, export and the
benchmarks share it.

``ROOT/images/<name>``, ``ROOT/splits/<split>_<k>.txt``, ``ROOT/gaze/<user>/<stem>.png``,
``ROOT/gaze/fixations.csv``. Images are keyed by their *stem* (file name without the image
extension), so a split line ``00001.jpg 0.7``, a heatmap ``gaze/u/00001.png`` and a fixation row
``u,00001.jpg,...`` all refer to the same image.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import re
from pathlib import Path
from typing import Iterable

import cv2
import numpy as np

from memgaze.console import WarningCounter
from memgaze.errors import fail

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
SPLITS = ("train", "val", "test")
FIXATIONS_NAME = "fixations.csv"


def image_key(name: str) -> str:
    """The stem that identifies an image: ``a/b.jpg`` → ``a/b``; names without an image suffix stay."""
    root, ext = os.path.splitext(name)
    return root if ext.lower() in IMAGE_EXTENSIONS else name


def split_path(root: Path, split: str, fold: int) -> Path:
    """``ROOT/splits/<split>_<fold>.txt``."""
    return root / "splits" / f"{split}_{fold}.txt"


def split_text(rows: Iterable[tuple[str, float]], digits: int = 6) -> str:
    """The text of a split file: one ``<name> <score>`` line per row; one-line error for a name with a space."""
    lines = []
    for name, score in rows:
        if not name or any(c.isspace() for c in name):
            fail(f"image name {name!r} cannot go in a split file (names are whitespace-separated)")
        lines.append(f"{name} {score:.{digits}f}")
    return "\n".join(lines) + "\n"


def list_folds(root: Path) -> list[int]:
    """The split numbers ``k`` for which ``ROOT/splits`` holds all of ``train_k``, ``val_k`` and ``test_k``."""
    folder = root / "splits"
    found: dict[int, set[str]] = {}
    for path in folder.glob("*_*.txt") if folder.is_dir() else ():
        match = re.fullmatch(r"(train|val|test)_([1-9][0-9]*)\.txt", path.name)
        if match:
            found.setdefault(int(match[2]), set()).add(match[1])
    return sorted(k for k, splits in found.items() if splits == set(SPLITS))


def is_synthetic(root: Path) -> bool:
    """Whether ``ROOT/README.txt`` says the data are synthetic (as the demo generator's does)."""
    readme = root / "README.txt"
    return readme.is_file() and "synthetic" in readme.read_text(errors="replace").lower()


def gaze_dir(root: Path) -> Path:
    """``ROOT/gaze``."""
    return root / "gaze"


def resolve_image(root: Path, name: str) -> Path | None:
    """The file of split-line name ``name``: ``images/<name>`` if it has an image suffix, else
    ``images/<name>.jpg|.jpeg|.png``; None when no such file exists."""
    folder = root / "images"
    if os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS:
        path = folder / name
        return path if path.is_file() else None
    for ext in IMAGE_EXTENSIONS:
        path = folder / f"{name}{ext}"
        if path.is_file():
            return path
    return None


def check_image_file(path: Path) -> str | None:
    """Cheap structural check (no decoding): None if ``path`` looks like a complete JPEG/PNG,
    else why not. Catches empty, non-image and truncated files (a truncated JPEG still
    "decodes" in OpenCV, grey-filled, so the end marker is what gives it away)."""
    stat = path.stat()
    return _check_cached(str(path), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=None)
def _check_cached(path: str, size: int, mtime_ns: int) -> str | None:
    """``check_image_file`` memoised per (path, size, mtime): a split indexed twice is checked once."""
    del mtime_ns  # part of the cache key only
    if size < 16:
        return "file is empty or too short"
    with open(path, "rb") as handle:
        head = handle.read(8)
        handle.seek(-min(size, 1024), os.SEEK_END)
        tail = handle.read()
    if head[:3] == b"\xff\xd8\xff":
        # JPEG: ends with EOI (FFD9), possibly followed by some trailing bytes.
        return None if b"\xff\xd9" in tail else "truncated JPEG (no end-of-image marker)"
    if head == b"\x89PNG\r\n\x1a\n":
        return None if b"IEND" in tail else "truncated PNG (no IEND chunk)"
    return "not a JPEG or PNG file"


def load_rgb(path: Path, size: int) -> np.ndarray | None:
    """Decode ``path`` with OpenCV and resize to ``size``×``size`` (INTER_AREA): uint8 RGB
    ``[size, size, 3]``, or None when OpenCV cannot decode it."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        return None
    if bgr.shape[:2] != (size, size):
        bgr = cv2.resize(bgr, (size, size), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


@dataclasses.dataclass(frozen=True)
class ScoredImage:
    """One usable split line: ``name`` as written there, its score, and the image file."""

    name: str
    score: float
    path: Path

    @property
    def key(self) -> str:
        """The image stem that gaze files are matched by."""
        return image_key(self.name)


def read_split(
    root: str | os.PathLike[str], split: str, fold: int = 1, warnings: WarningCounter | None = None
) -> list[ScoredImage]:
    """Usable images of ``ROOT/splits/<split>_<fold>.txt``; one warning per bad line or image.

    Skipped: malformed lines, scores outside [0, 1] or NaN, duplicate names, missing images and
    images that fail the cheap structural check (empty, not JPEG/PNG, truncated). A split with
    nothing usable is a one-line error.
    """
    root = Path(root)
    if split not in SPLITS:
        fail(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    path = split_path(root, split, fold)
    if not path.is_file():
        fail(f"split file {path} does not exist (expected the LaMem layout ROOT/splits/{split}_{fold}.txt)")
    own = warnings is None
    warn = warnings if warnings is not None else WarningCounter(f"{split} split")
    out: list[ScoredImage] = []
    seen: set[str] = set()
    for lineno, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
        parts = line.split()
        if not parts or parts[0].startswith("#"):
            continue
        where = f"{path}:{lineno}"
        try:
            score = float(parts[1])
        except (IndexError, ValueError):
            warn.warn("malformed line", f"{where}: expected '<name> <score>', got {line.strip()!r}; skipped")
            continue
        name = parts[0]
        if not 0.0 <= score <= 1.0:  # also rejects NaN
            warn.warn("score out of range", f"{where}: score {parts[1]} of {name} is not in [0, 1]; skipped")
            continue
        if image_key(name) in seen:
            warn.warn("duplicate", f"{where}: {name} is listed twice; the first line is used")
            continue
        image = resolve_image(root, name)
        if image is None:
            warn.warn("missing image", f"{where}: image {name} not found under {root / 'images'}; skipped")
            continue
        problem = check_image_file(image)
        if problem is not None:
            warn.warn("corrupt image", f"{where}: image {image} is unusable ({problem}); skipped")
            continue
        seen.add(image_key(name))
        out.append(ScoredImage(name, score, image))
    if own:
        warn.summary()
    if not out:
        fail(f"split {path} has no usable images")
    return out
