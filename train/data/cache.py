"""Preprocessed-image cache: every image of a split decoded once, resized, in one memory-mapped file.

``<folder>/<tag>.npy`` holds uint8 RGB ``[n, S, S, 3]`` (``np.lib.format.open_memmap``) and
``<folder>/<tag>.json`` a small index: the hash of (image paths, their byte sizes and mtimes,
S), and the rows whose image could not be decoded. A matching index means the cache is reused;
any other hash rebuilds it. Both files are built under temporary names and renamed into place,
so an interrupted build leaves no half cache behind.
"""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from rich.progress import Progress

from memgaze.atomic import atomic_path, write_json
from memgaze.console import WarningCounter, console
from memgaze.layout import load_rgb

CACHE_VERSION = 1
_CHUNK = 256


def cache_hash(paths: Sequence[Path], size: int) -> str:
    """sha256 over the cache version, ``size`` and each path with its byte size and mtime."""
    digest = hashlib.sha256(f"memgaze-image-cache {CACHE_VERSION} {size}\n".encode())
    for path in paths:
        stat = os.stat(path)
        digest.update(f"{os.path.abspath(path)}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


class ImageCache:
    """Read-only view of a built cache; rows are opened lazily, so it pickles cheaply to workers."""

    def __init__(self, npy_path: Path, index: dict[str, Any]) -> None:
        self.npy_path = npy_path
        self.index = index
        self.valid = np.ones(index["count"], dtype=bool)
        self.valid[[int(row) for row in index["invalid"]]] = False
        self._array: np.ndarray | None = None

    @classmethod
    def load_or_build(
        cls,
        folder: str | os.PathLike[str],
        tag: str,
        paths: Sequence[Path],
        size: int,
        warnings: WarningCounter,
    ) -> ImageCache:
        """Reuse ``<folder>/<tag>.npy`` when its index hash matches, else build it (progress bar).

        Images that cannot be decoded get one warning each (again on reuse) and ``valid=False``.
        """
        folder = Path(folder)
        npy_path, json_path = folder / f"{tag}.npy", folder / f"{tag}.json"
        digest = cache_hash(paths, size)
        index = _read_index(json_path)
        if not (index and index.get("hash") == digest and _shape_ok(npy_path, (len(paths), size, size, 3))):
            index = _build(npy_path, paths, size, digest)
            write_json(json_path, index)
        for row, reason in index["invalid"].items():
            warnings.warn("corrupt image", f"image {paths[int(row)]} {reason}; skipped")
        return cls(npy_path, index)

    def __len__(self) -> int:
        return int(self.index["count"])

    def __getitem__(self, row: int) -> np.ndarray:
        """uint8 RGB ``[S, S, 3]`` of ``row`` (a copy, safe to modify)."""
        if self._array is None:
            self._array = np.load(self.npy_path, mmap_mode="r")
        return np.array(self._array[row])

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_array": None}


def _read_index(path: Path) -> dict[str, Any] | None:
    try:
        index = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return index if isinstance(index, dict) and index.get("version") == CACHE_VERSION else None


def _shape_ok(path: Path, shape: tuple[int, ...]) -> bool:
    try:
        array = np.load(path, mmap_mode="r")
    except (OSError, ValueError):
        return False
    return array.shape == shape and array.dtype == np.uint8


def _build(npy_path: Path, paths: Sequence[Path], size: int, digest: str) -> dict[str, Any]:
    """Decode every image with a thread pool (OpenCV releases the GIL) into a temp .npy, rename."""
    invalid: dict[str, str] = {}
    with atomic_path(npy_path) as tmp:
        array = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(paths), size, size, 3))
        workers = min(16, os.cpu_count() or 1)
        with ThreadPoolExecutor(workers) as pool, Progress(console=console, transient=True) as progress:
            task = progress.add_task(f"caching {len(paths)} images at {size}px", total=len(paths))
            for start in range(0, len(paths), _CHUNK):
                chunk = paths[start : start + _CHUNK]
                for offset, rgb in enumerate(pool.map(lambda p: load_rgb(p, size), chunk)):
                    if rgb is None:
                        invalid[str(start + offset)] = "cannot be decoded"
                    else:
                        array[start + offset] = rgb
                progress.advance(task, len(chunk))
        array.flush()
        del array
    return {"version": CACHE_VERSION, "hash": digest, "size": size, "count": len(paths), "invalid": invalid}
