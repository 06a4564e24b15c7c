"""Eye-tracker fixations into memgaze's gaze layout: each export reader gives :class:`Fixation` records in
the coordinates its vendor uses; :func:`place_fixations` maps them onto the stimulus images (with the
viewing geometry of :mod:`.viewing`) and counts, per user, what it kept and what it dropped;
:func:`write_gaze` writes ``DST/gaze/fixations.csv`` and a record of the conversion, atomically.

A fixation is dropped **off-image** when it falls outside the image as shown, and for **other**
reasons (named in one warning line each) when it cannot be placed: no image was on the screen, the
image is not in the stimulus folder, or the export marks it invalid (those the readers count).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import os
from collections import Counter
from pathlib import Path
from typing import Callable, Iterable, Union

from PIL import Image
from rich.table import Table

from memgaze.atomic import link_or_copy, write_json, write_text
from memgaze.console import WarningCounter, console
from memgaze.errors import fail
from memgaze.layout import FIXATIONS_NAME, IMAGE_EXTENSIONS, gaze_dir, image_key
from memgaze.train.convert.viewing import Rect, Screen, on_image, placement, screen_to_image, sigma_image_px

RectSpec = Union[Rect, Callable[[tuple[int, int]], Rect], None]  # where shown: fixed, or a function of the image's size
CONVERSION_NAME = "conversion.json"


@dataclasses.dataclass(frozen=True)
class Fixation:
    """One fixation as an export gives it: ``x, y`` in ``frame`` (``screen_px``, ``screen_norm``, ``image_px`` or
    ``image_norm``; origin top-left in each); ``rect`` where the export records
    where the image was shown (screen pixels; a function of the image's (width, height) where it gives
    a position only)."""

    user: str
    image: str
    x: float
    y: float
    duration_ms: float
    frame: str
    rect: RectSpec = None


@dataclasses.dataclass
class Read:
    """What a reader found: the fixations, and per user the fixations it had to drop (other reasons)."""

    fixations: list[Fixation] = dataclasses.field(default_factory=list)
    dropped: Counter[str] = dataclasses.field(default_factory=Counter)
    users: set[str] = dataclasses.field(default_factory=set)

    def drop(self, user: str, warnings: WarningCounter, kind: str, message: str) -> None:
        """Count one fixation of ``user`` dropped for ``kind`` (one warning line per message)."""
        self.users.add(user)
        self.dropped[user] += 1
        warnings.warn(kind, message)

    def add(self, fixation: Fixation) -> None:
        """Keep one fixation."""
        self.users.add(fixation.user)
        self.fixations.append(fixation)


@dataclasses.dataclass(frozen=True)
class Geometry:
    """How the stimuli were shown: the screen (if known), the default placement, rectangles per image,
    and the blur: ``sigma_deg`` degrees (with the screen's physical size) or ``sigma_px`` image pixels."""

    screen: Screen | None = None
    placement: str = "fit"
    rects: dict[str, Rect] = dataclasses.field(default_factory=dict)
    sigma_deg: float = 1.0
    sigma_px: float | None = None
    physical_cm: tuple[float, float] | None = None  # screen width and viewing distance, for an export's own screen

    def with_screen(self, width_px: int, height_px: int) -> Geometry:
        """This geometry on a screen of the given resolution (one the export records)."""
        width_cm, distance_cm = self.physical_cm or (None, None)
        return dataclasses.replace(self, screen=Screen(width_px, height_px, width_cm, distance_cm))


@dataclasses.dataclass(frozen=True)
class Placed:
    """A fixation on a stimulus image: its file name, image-pixel position, duration and blur."""

    user: str
    image: str
    x: float
    y: float
    duration_ms: float
    sigma_px: float | None


@dataclasses.dataclass
class Tally:
    """Per user: fixations kept, dropped off the image, and dropped for other reasons."""

    kept: Counter[str] = dataclasses.field(default_factory=Counter)
    off_image: Counter[str] = dataclasses.field(default_factory=Counter)
    other: Counter[str] = dataclasses.field(default_factory=Counter)

    def rows(self, users: Iterable[str]) -> list[dict[str, object]]:
        """One row of counts per user, sorted by name."""
        return [{"user": u, "kept": self.kept[u], "off_image": self.off_image[u], "other": self.other[u]} for u in sorted(users)]


class Stimuli:
    """The stimulus folder: image files by stem (an export's ``images/cat.jpg`` finds ``cat.png`` too), with
    their sizes read from the headers."""

    def __init__(self, folder: Path) -> None:
        if not folder.is_dir():
            fail(f"--stimuli {folder} is not a folder of the images shown")
        self.folder = folder
        self.files: dict[str, Path] = {}
        for path in sorted(folder.rglob("*")):
            if path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file():
                self.files.setdefault(image_key(path.name), path)
        if not self.files:
            fail(f"--stimuli {folder} holds no JPEG or PNG images")
        self._sizes: dict[str, tuple[int, int]] = {}

    def find(self, name: str) -> Path | None:
        """The file of an export's image name (a path, a file name or a stem), or None."""
        return self.files.get(image_key(Path(name.replace("\\", "/")).name))

    def size(self, path: Path) -> tuple[int, int]:
        """(width, height) of a stimulus, from its header."""
        key = str(path)
        if key not in self._sizes:
            try:
                with Image.open(path) as image:
                    self._sizes[key] = (image.width, image.height)
            except OSError as exc:
                fail(f"stimulus {path} cannot be read ({exc})")
        return self._sizes[key]


def place_fixations(read: Read, stimuli: Stimuli, geometry: Geometry, warnings: WarningCounter) -> tuple[list[Placed], Tally]:
    """Map every fixation onto its stimulus image; count kept / off-image / other per user."""
    tally = Tally(other=Counter(read.dropped))
    placed: list[Placed] = []
    ppd = geometry.screen.pixels_per_degree() if geometry.screen is not None else None
    for fix in read.fixations:
        path = stimuli.find(fix.image)
        if path is None:
            tally.other[fix.user] += 1
            warnings.warn("image not in stimuli", f"fixations on {fix.image!r}: no such image in {stimuli.folder}; dropped")
            continue
        image_wh = stimuli.size(path)
        rect = fix.rect(image_wh) if callable(fix.rect) else fix.rect
        rect = rect or geometry.rects.get(image_key(path.name))
        if rect is None and geometry.screen is not None:
            rect = placement(image_wh, (geometry.screen.width_px, geometry.screen.height_px), geometry.placement)
        x, y = _to_image(fix, rect, image_wh, geometry.screen)
        if not on_image(x, y, image_wh):
            tally.off_image[fix.user] += 1
            continue
        sigma = geometry.sigma_px
        if sigma is None and ppd is not None and rect is not None:
            sigma = sigma_image_px(geometry.sigma_deg, ppd, rect, image_wh)
        tally.kept[fix.user] += 1
        placed.append(Placed(fix.user, path.relative_to(stimuli.folder).as_posix(), x, y, fix.duration_ms, sigma))
    return placed, tally


def _to_image(fix: Fixation, rect: Rect | None, image_wh: tuple[int, int], screen: Screen | None) -> tuple[float, float]:
    """A fixation's position in the image's own pixels."""
    if fix.frame == "image_px":
        return fix.x, fix.y
    if fix.frame == "image_norm":
        return fix.x * image_wh[0], fix.y * image_wh[1]
    x, y = fix.x, fix.y
    if fix.frame == "screen_norm":
        if screen is None:
            fail("this export gives positions as fractions of the screen: give the screen's size (--screen WxH)")
        x, y = x * screen.width_px, y * screen.height_px
    if rect is None:
        fail("this export gives positions on the screen: give the screen's size (--screen WxH) or where each image "
             "was shown (--rects CSV)")
    return screen_to_image(x, y, rect, image_wh)


def write_gaze(dst: Path, placed: list[Placed], tally: Tally, users: Iterable[str], stimuli: Stimuli, record: dict[str, object]) -> None:
    """Write ``DST/gaze/fixations.csv`` (rows of other users already there are kept; this conversion's
    users are replaced), link the stimuli used into ``DST/images/`` and record the conversion in
    ``DST/gaze/conversion.json``; print the per-user counts."""
    users = sorted(set(users))
    target = gaze_dir(dst) / FIXATIONS_NAME
    if users:
        _print_tally(tally, users)
    if not placed:
        fail("no fixation could be placed on a stimulus image: nothing written (see the warnings and counts above)"
             if users else "the export holds no fixations")
    kept_rows = _other_users_rows(target, set(users))
    with_sigma = any(p.sigma_px is not None for p in placed) or any(len(r) > 5 and r[5] for r in kept_rows)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["user", "image", "x", "y", "duration_ms", *(["sigma_px"] if with_sigma else [])])
    for row in kept_rows:
        writer.writerow((row + [""] * 6)[: 6 if with_sigma else 5])
    for p in placed:
        sigma = [f"{p.sigma_px:.2f}" if p.sigma_px is not None else ""] if with_sigma else []
        writer.writerow([p.user, p.image, f"{p.x:.2f}", f"{p.y:.2f}", f"{p.duration_ms:.1f}", *sigma])
    for name in sorted({p.image for p in placed}):
        _link_image(stimuli.folder / name, dst / "images" / name)
    write_text(target, buffer.getvalue())
    write_json(gaze_dir(dst) / CONVERSION_NAME, {**record, "users": tally.rows(users)})
    console.print(f"wrote {target} ({len(placed)} fixations of {len(users)} user(s)) and {gaze_dir(dst) / CONVERSION_NAME}")


def _other_users_rows(target: Path, users: set[str]) -> list[list[str]]:
    """Rows of an existing fixations.csv whose user this conversion does not write (columns in our order)."""
    if not target.is_file():
        return []
    with open(target, newline="", encoding="utf-8", errors="replace") as handle:
        reader = csv.reader(handle)
        header = [h.strip() for h in next(reader, [])]
        names = ["user", "image", "x", "y", "duration_ms", "sigma_px"]
        if not {"user", "image", "x", "y", "duration_ms"} <= set(header):
            fail(f"{target} exists and is not a fixations.csv (user,image,x,y,duration_ms); move it away first")
        cols = [header.index(n) if n in header else None for n in names]
        return [[row[c] if c is not None and c < len(row) else "" for c in cols] for row in reader
                if row and row[cols[0] or 0].strip() and row[cols[0] or 0].strip() not in users]


def _link_image(source: Path, target: Path) -> None:
    """Put a stimulus into the dataset's images/ (hard link, else copy) unless it is already there."""
    if target.exists() or source.resolve() == target.resolve():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    link_or_copy(source, tmp)
    os.replace(tmp, target)


def _print_tally(tally: Tally, users: list[str]) -> None:
    table = Table(title="fixations per user")
    for column in ("user", "kept", "dropped off-image", "dropped (other)"):
        table.add_column(column, justify="left" if column == "user" else "right")
    for row in tally.rows(users):
        table.add_row(str(row["user"]), str(row["kept"]), str(row["off_image"]), str(row["other"]))
    console.print(table)
