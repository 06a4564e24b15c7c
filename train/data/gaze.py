"""Per-user gaze heatmaps: ``ROOT/gaze/<user>/<stem>.png`` or ``ROOT/gaze/fixations.csv``.

- **PNG heatmaps**: 8-bit grayscale, any size; resized (INTER_AREA) to the map size. An
  unreadable or all-zero PNG is skipped with one warning. Any size or aspect is accepted.
- **Fixations**: ``fixations.csv`` with header ``user,image,x,y,duration_ms`` (columns in any
  order; x, y in pixels of the ORIGINAL image; ``image`` with or without its extension) and an
  optional ``sigma_px`` column: each fixation's blur in pixels of the original image (one degree of
  visual angle as the eye-tracker converters write it; scaled to the map per axis). A map is the
  duration-weighted sum of Gaussians at the fixations; a row without ``sigma_px`` (or every row,
  when the store is given ``sigma_px`` in **map pixels**) uses that, by default 5% of the map's
  shorter side, at least 1. A fixation outside the image is skipped (one warning per user and
  image); a malformed row is skipped with a warning.
- When both exist for a (user, image), the PNG wins for ``heatmap``; ``fixations`` (the
  binary map for NSS / AUC) uses the CSV fixations when there are any, else the local maxima
  of the PNG map (3×3 maxima at least 30% of the map's maximum).

The CSV is parsed once per store and indexed by (user, image stem).
"""

from __future__ import annotations

import csv
import os
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from memgaze.console import WarningCounter
from memgaze.layout import FIXATIONS_NAME, gaze_dir, image_key, resolve_image

FIXATION_COLUMNS = ("user", "image", "x", "y", "duration_ms")
SIGMA_COLUMN = "sigma_px"  # optional: the fixation's blur in pixels of the original image
PEAK_FRACTION = 0.3


def default_sigma(map_size: tuple[int, int]) -> float:
    """Default Gaussian sigma in map pixels: 5% of the shorter side, at least 1."""
    return max(1.0, 0.05 * min(map_size))


def map_hw(size: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    """``(h, w)`` from an int (square) or a pair."""
    if isinstance(size, int):
        return (size, size)
    h, w = size
    return (int(h), int(w))


def fixation_users(path: Path) -> set[str]:
    """User names in a fixations.csv (no validation; for listing users cheaply)."""
    with open(path, newline="", encoding="utf-8", errors="replace") as handle:
        reader = csv.DictReader(handle)
        return {row["user"].strip() for row in reader if row.get("user") and row["user"].strip()}


def read_fixations(path: Path, warnings: WarningCounter) -> dict[tuple[str, str], np.ndarray]:
    """Parse fixations.csv once: ``{(user, image stem): float64 [n, 4] (x, y, duration_ms, sigma_px or NaN)}``."""
    rows: dict[tuple[str, str], list[tuple[float, float, float, float]]] = defaultdict(list)
    with open(path, newline="", encoding="utf-8", errors="replace") as handle:
        reader = csv.reader(handle)
        header = [name.strip() for name in next(reader, [])]
        if not set(FIXATION_COLUMNS) <= set(header):
            warnings.warn("bad fixations file", f"{path}: header must name {','.join(FIXATION_COLUMNS)}; file ignored")
            return {}
        cols = [header.index(name) for name in FIXATION_COLUMNS]
        sigma_col = header.index(SIGMA_COLUMN) if SIGMA_COLUMN in header else None
        for lineno, row in enumerate(reader, start=2):
            if not row or not "".join(row).strip():
                continue
            try:
                user, image, x, y, duration = (row[c].strip() for c in cols)
                sigma = row[sigma_col].strip() if sigma_col is not None and sigma_col < len(row) else ""
                values = (float(x), float(y), float(duration), float(sigma) if sigma else np.nan)
            except (IndexError, ValueError):
                values = None
            if (values is None or not user or not image or not np.all(np.isfinite(values[:3])) or values[2] <= 0
                    or values[3] <= 0 or np.isinf(values[3])):
                warnings.warn("bad fixation row", f"{path}:{lineno}: malformed fixation row {','.join(row)!r}; skipped")
                continue
            rows[(user, image_key(image))].append(values)
    return {key: np.asarray(value, dtype=np.float64) for key, value in rows.items()}


def gaussian_map(xy: np.ndarray, weights: np.ndarray, map_size: tuple[int, int], sigma: float | np.ndarray) -> np.ndarray:
    """Weighted sum of Gaussians at ``xy`` ([n, 2], map pixel coordinates), float32 ``[h, w]``; ``sigma`` one
    value for all, or ``[n, 2]`` (x, y) per fixation; computed separably as ``(gy * w)^T @ gx``."""
    h, w = map_size
    sig = np.broadcast_to(np.asarray(sigma, dtype=np.float64), (len(xy), 2))
    gx = np.exp(-((np.arange(w)[None, :] - xy[:, :1]) ** 2) / (2 * sig[:, :1] ** 2))
    gy = np.exp(-((np.arange(h)[None, :] - xy[:, 1:2]) ** 2) / (2 * sig[:, 1:2] ** 2))
    return ((gy * weights[:, None]).T @ gx).astype(np.float32)


class GazeStore:
    """All gaze data under ``ROOT/gaze``, as maps of ``map_size`` that sum to 1."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        map_size: int | tuple[int, int],
        sigma_px: float | None = None,
        warnings: WarningCounter | None = None,
        *,
        user_folders: dict[str, Path] | None = None,
        fixations_csv: Path | None = None,
    ) -> None:
        """Gaze of the images under ``ROOT/images``: from ``ROOT/gaze`` (its user folders and
        fixations.csv), or, when either of ``user_folders`` (``{user: folder of PNGs}``) and
        ``fixations_csv`` is given, from exactly those."""
        self.root = Path(root)
        self.map_size = map_hw(map_size)
        self.sigma_px = float(sigma_px) if sigma_px else default_sigma(self.map_size)
        self._sigma_given = bool(sigma_px)
        self.warnings = warnings if warnings is not None else WarningCounter("gaze")
        if user_folders is None and fixations_csv is None:
            folder = gaze_dir(self.root)
            user_folders = {p.name: p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")} if folder.is_dir() else {}
            fixations_csv = folder / FIXATIONS_NAME
        self._png: dict[tuple[str, str], Path] = {}
        for user, user_dir in sorted((user_folders or {}).items()):
            with os.scandir(user_dir) as entries:
                for entry in entries:
                    if entry.name.lower().endswith(".png") and entry.is_file():
                        self._png[(user, entry.name[:-4])] = Path(entry.path)
        self._fix = read_fixations(fixations_csv, self.warnings) if fixations_csv is not None and fixations_csv.is_file() else {}
        self._users_by_image: dict[str, set[str]] = defaultdict(set)
        for user, key in (*self._png, *self._fix):
            self._users_by_image[key].add(user)
        self.users = sorted({user for user, _ in (*self._png, *self._fix)})
        self._image_hw: dict[str, tuple[int, int] | None] = {}
        self._warned: set[tuple[str, str, str]] = set()

    def users_for(self, name: str) -> list[str]:
        """Sorted users with a heatmap or fixations for image ``name`` (stem or file name)."""
        return sorted(self._users_by_image.get(image_key(name), ()))

    def heatmap(self, user: str, name: str) -> np.ndarray | None:
        """float32 ``[h, w]`` map summing to 1 (PNG first, else fixations), or None."""
        key = image_key(name)
        if (user, key) in self._png:
            return self._png_map(user, key)
        points = self._map_points(user, name)
        if points is None:
            return None
        xy, duration, sigma = points
        return _unit_sum(gaussian_map(xy, duration, self.map_size, sigma))

    def fixations(self, user: str, name: str) -> np.ndarray | None:
        """Binary fixation map bool ``[h, w]`` (CSV fixations, else the PNG's peaks), or None."""
        points = self._map_points(user, name)
        if points is not None:
            h, w = self.map_size
            cols = np.clip(np.rint(points[0][:, 0]).astype(int), 0, w - 1)
            rows = np.clip(np.rint(points[0][:, 1]).astype(int), 0, h - 1)
            out = np.zeros(self.map_size, dtype=bool)
            out[rows, cols] = True
            return out
        key = image_key(name)
        if (user, key) not in self._png:
            return None
        heat = self._png_map(user, key)
        if heat is None:
            return None
        peaks = heat == cv2.dilate(heat, np.ones((3, 3), np.uint8))
        return peaks & (heat >= PEAK_FRACTION * heat.max())

    def image_fixations(self, user: str, name: str) -> tuple[np.ndarray, tuple[int, int]] | None:
        """The CSV fixations of (user, image) as float64 ``[n, 2]`` (x, y) in pixels of the original image, and
        its (height, width); None without CSV fixations or without the image."""
        rows = self._fix.get((user, image_key(name)))
        hw = self._original_hw(name) if rows is not None else None
        return (rows[:, :2].copy(), hw) if rows is not None and hw is not None else None

    def _warn_once(self, kind: str, user: str, key: str, message: str) -> None:
        if (kind, user, key) not in self._warned:
            self._warned.add((kind, user, key))
            self.warnings.warn(kind, message)

    def _png_map(self, user: str, key: str) -> np.ndarray | None:
        path = self._png[(user, key)]
        gray = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if gray is None:
            self._warn_once("unreadable heatmap", user, key, f"heatmap {path} cannot be read; skipped")
            return None
        if not gray.any():
            self._warn_once("blank heatmap", user, key, f"heatmap {path} is blank (all zero); skipped")
            return None
        h, w = self.map_size
        return _unit_sum(cv2.resize(gray.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA))

    def _map_points(self, user: str, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """The (user, image) fixations inside the image, in map pixel coordinates, their durations and
        their sigmas ``[n, 2]`` in map pixels (the row's ``sigma_px`` scaled per axis, else the store's)."""
        key = image_key(name)
        rows = self._fix.get((user, key))
        if rows is None:
            return None
        hw = self._original_hw(name)
        if hw is None:
            self._warn_once("fixations without image", user, key, f"fixations of {user} on {name}: image not found or unreadable; skipped")
            return None
        height, width = hw
        inside = (rows[:, 0] >= 0) & (rows[:, 0] < width) & (rows[:, 1] >= 0) & (rows[:, 1] < height)
        if not inside.all():
            self._warn_once(
                "fixation outside image", user, key,
                f"{int((~inside).sum())} fixation(s) of {user} on {name} lie outside the {width}x{height} image; skipped",
            )
        rows = rows[inside]
        if len(rows) == 0:
            return None
        h, w = self.map_size
        xy = np.stack([(rows[:, 0] + 0.5) * w / width - 0.5, (rows[:, 1] + 0.5) * h / height - 0.5], axis=1)
        own = np.isfinite(rows[:, 3:4]) & (not self._sigma_given)
        sigma = np.where(own, rows[:, 3:4] * np.array([[w / width, h / height]]), self.sigma_px)
        return xy, rows[:, 2], np.maximum(sigma, 0.5)

    def _original_hw(self, name: str) -> tuple[int, int] | None:
        """(height, width) of the original image from its header (PIL reads no pixels), cached."""
        key = image_key(name)
        if key not in self._image_hw:
            path = resolve_image(self.root, name)
            self._image_hw[key] = None
            if path is not None:
                try:
                    with Image.open(path) as image:
                        self._image_hw[key] = (image.height, image.width)
                except OSError:
                    pass
        return self._image_hw[key]


def _unit_sum(heat: np.ndarray) -> np.ndarray | None:
    total = float(heat.sum())
    return (heat / total).astype(np.float32) if total > 0 and np.isfinite(total) else None
