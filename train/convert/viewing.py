"""Viewing geometry: where on the screen an image was shown, screen pixels to image pixels, and the
blur of one degree of visual angle in image pixels.

- **Placement** (:class:`Rect`, screen pixels, origin top-left): by default the image is fitted to the
  screen and centred, keeping its aspect (letterboxed: :func:`fit_centred`); ``native`` shows it at its own
  size, centred; or a rectangle per image is given (a CSV) or read from the export where it records one.
- **Screen to image**: ``x_img = (x_screen - rect.x) * image_w / rect.w`` (the same for y). A position
  outside ``[0, image_w) x [0, image_h)`` is off the image.
- **Pixels per degree** at the screen centre: one degree spans ``2 d tan(0.5°)`` cm at viewing distance
  ``d``, so ``ppd = 2 d tan(0.5°) * screen_w_px / screen_w_cm``.
- **Sigma** in image pixels: ``sigma_deg * ppd * image_w / rect.w`` (degrees to screen pixels, then to the
  image's own pixels); ``sigma_px`` (image pixels) set directly overrides it.
"""

from __future__ import annotations

import csv
import dataclasses
import math
from pathlib import Path

from memgaze.errors import fail
from memgaze.layout import image_key

PLACEMENTS = ("fit", "native")


@dataclasses.dataclass(frozen=True)
class Rect:
    """A rectangle on the screen, in screen pixels: top-left corner and size."""

    x: float
    y: float
    w: float
    h: float


@dataclasses.dataclass(frozen=True)
class Screen:
    """The display: its resolution, and (optionally) its physical width and the viewing distance."""

    width_px: int
    height_px: int
    width_cm: float | None = None
    distance_cm: float | None = None

    def pixels_per_degree(self) -> float | None:
        """Screen pixels per degree of visual angle at the screen centre; None without the physical sizes."""
        if self.width_cm is None or self.distance_cm is None:
            return None
        return 2 * self.distance_cm * math.tan(math.radians(0.5)) * self.width_px / self.width_cm


def parse_size(text: str, what: str) -> tuple[int, int]:
    """``"1920x1080"`` → ``(1920, 1080)``; a one-line error otherwise."""
    parts = text.lower().replace(" ", "").split("x")
    try:
        width, height = (int(p) for p in parts)
    except ValueError:
        fail(f"{what} must be WIDTHxHEIGHT in pixels (e.g. 1920x1080), got {text!r}")
    if width <= 0 or height <= 0:
        fail(f"{what} must be positive, got {text!r}")
    return width, height


def fit_centred(image_wh: tuple[int, int], screen_wh: tuple[int, int]) -> Rect:
    """The largest rectangle of the image's aspect that fits the screen, centred (letterboxed)."""
    (iw, ih), (sw, sh) = image_wh, screen_wh
    scale = min(sw / iw, sh / ih)
    w, h = iw * scale, ih * scale
    return Rect((sw - w) / 2, (sh - h) / 2, w, h)


def native_centred(image_wh: tuple[int, int], screen_wh: tuple[int, int]) -> Rect:
    """The image at its own size (one image pixel per screen pixel), centred on the screen."""
    (iw, ih), (sw, sh) = image_wh, screen_wh
    return Rect((sw - iw) / 2, (sh - ih) / 2, float(iw), float(ih))


def placement(image_wh: tuple[int, int], screen_wh: tuple[int, int], how: str) -> Rect:
    """Where the image was shown when the export does not say: ``fit`` or ``native``, centred."""
    if how not in PLACEMENTS:
        fail(f"--placement must be one of {', '.join(PLACEMENTS)}, got {how!r}")
    return fit_centred(image_wh, screen_wh) if how == "fit" else native_centred(image_wh, screen_wh)


def screen_to_image(x: float, y: float, rect: Rect, image_wh: tuple[int, int]) -> tuple[float, float]:
    """A screen position in the image's own pixels (it may lie outside the image)."""
    iw, ih = image_wh
    return (x - rect.x) * iw / rect.w, (y - rect.y) * ih / rect.h


def on_image(x: float, y: float, image_wh: tuple[int, int]) -> bool:
    """Whether image-pixel position (x, y) lies on the image."""
    return 0 <= x < image_wh[0] and 0 <= y < image_wh[1]


def sigma_image_px(sigma_deg: float, ppd: float, rect: Rect, image_wh: tuple[int, int]) -> float:
    """``sigma_deg`` degrees in the image's own pixels, for an image shown in ``rect``."""
    return sigma_deg * ppd * image_wh[0] / rect.w


def read_rects(path: Path) -> dict[str, Rect]:
    """Per-image rectangles from a CSV with header ``image,x,y,width,height`` (screen pixels)."""
    if not path.is_file():
        fail(f"--rects {path} is not a file")
    out: dict[str, Rect] = {}
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        need = {"image", "x", "y", "width", "height"}
        if not need <= set(reader.fieldnames or ()):
            fail(f"{path}: header must name {','.join(sorted(need))}")
        for lineno, row in enumerate(reader, start=2):
            try:
                rect = Rect(float(row["x"]), float(row["y"]), float(row["width"]), float(row["height"]))
            except (TypeError, ValueError):
                fail(f"{path}:{lineno}: x, y, width and height must be numbers")
            if rect.w <= 0 or rect.h <= 0:
                fail(f"{path}:{lineno}: width and height must be positive")
            out[image_key(row["image"].strip())] = rect
    return out
