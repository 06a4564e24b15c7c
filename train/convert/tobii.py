"""Tobii Pro Lab data exports (Analyze → Data Export, "Single standard file (.tsv)"): one row per gaze sample,
tab-separated, columns named as Pro Lab names them.

- **User**: ``Participant name`` (``Recording name`` where there is none).
- **Image**: ``Presented Media name`` (``Presented Stimulus name`` where there is none); rows without one are
  outside any image.
- **Fixations**: rows whose ``Eye movement type`` is ``Fixation`` (classified by Pro Lab's own fixation
  filter, I-VT by default), grouped by ``Eye movement type index``; duration ``Gaze event duration`` (ms).
  Position, in order of preference: ``Fixation point X/Y (MCSnorm)`` (fractions of the media, so no
  geometry is needed); ``Fixation point X/Y`` on the screen (DACS pixels) placed with the media's rectangle
  the export records (``Presented Media position X/Y (DACSpx)``, ``Presented Media width/height``), else with
  ``--placement`` or ``--rects``.
- An export without ``Eye movement type`` holds samples only: fixations are detected in ``Gaze point X/Y``
  per participant, recording and media (:mod:`.detection`), with ``Recording timestamp`` (ms, or μs where
  its name says so).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from memgaze.console import WarningCounter
from memgaze.train.convert.detection import Detector, detect_fixations
from memgaze.train.convert.fixations import Fixation, Read
from memgaze.train.convert.tables import Table
from memgaze.train.convert.viewing import Rect, Screen


def read_tobii(paths: list[Path], screen: Screen | None, detector: Detector, warnings: WarningCounter) -> Read:
    """Fixations of every Pro Lab TSV export."""
    read = Read()
    for path in paths:
        table = Table(path, delimiter="\t")
        columns = _columns(table)
        if columns["type"] is None:
            _detected(table, columns, screen, detector, read)
        else:
            _classified(table, columns, read, warnings)
    return read


COLUMNS: dict[str, tuple[str, ...]] = {  # key: Pro Lab's names for it, older and newer
    "user": ("Participant name", "Recording name"),
    "recording": ("Recording name",),
    "media": ("Presented Media name", "Presented Stimulus name"),
    "type": ("Eye movement type",),
    "index": ("Eye movement type index",),
    "duration": ("Gaze event duration", "Gaze event duration [ms]"),
    "fx": ("Fixation point X", "Fixation point X [DACS px]"),
    "fy": ("Fixation point Y", "Fixation point Y [DACS px]"),
    "mx": ("Fixation point X (MCSnorm)", "Fixation point X [MCS norm]"),
    "my": ("Fixation point Y (MCSnorm)", "Fixation point Y [MCS norm]"),
    "rx": ("Presented Media position X (DACSpx)", "Presented Media position X [DACS px]"),
    "ry": ("Presented Media position Y (DACSpx)", "Presented Media position Y [DACS px]"),
    "rw": ("Presented Media width", "Presented Media width [px]"),
    "rh": ("Presented Media height", "Presented Media height [px]"),
    "time_ms": ("Recording timestamp", "Recording timestamp [ms]"),
    "time_us": ("Recording timestamp [μs]", "Recording timestamp [us]"),
    "gx": ("Gaze point X", "Gaze point X [DACS px]"),
    "gy": ("Gaze point Y", "Gaze point Y [DACS px]"),
}
REQUIRED = ("user", "media")


def _columns(table: Table) -> dict[str, int | None]:
    return {key: table.column(*names, required=key in REQUIRED) for key, names in COLUMNS.items()}


def _rect(row: list[str], col: dict[str, int | None]) -> Rect | None:
    """The media's rectangle on the screen, where the export records it."""
    x, y, w, h = (Table.number(row, col[k]) for k in ("rx", "ry", "rw", "rh"))
    return Rect(x, y, w, h) if np.isfinite([x, y, w, h]).all() and w > 0 and h > 0 else None


def _classified(table: Table, col: dict[str, int | None], read: Read, warnings: WarningCounter) -> None:
    """One fixation per (participant, recording, fixation index) among the rows typed ``Fixation``."""
    seen: set[tuple[str, str, str]] = set()
    for lineno, row in enumerate(table.rows, start=2):
        if Table.cell(row, col["type"]).lower() != "fixation":
            continue
        user = Table.cell(row, col["user"])
        key = (user, Table.cell(row, col["recording"]), Table.cell(row, col["index"]) or str(lineno))
        if key in seen or not user:
            continue
        seen.add(key)
        media = Table.cell(row, col["media"])
        where = f"{table.path}:{lineno}"
        if not media:
            read.drop(user, warnings, "no image shown", f"{where}: fixation {key[2]} of {user} while no media was shown; dropped")
            continue
        duration = Table.number(row, col["duration"])
        mx, my = Table.number(row, col["mx"]), Table.number(row, col["my"])
        fx, fy = Table.number(row, col["fx"]), Table.number(row, col["fy"])
        if not np.isfinite(duration) or duration <= 0:
            read.drop(user, warnings, "no duration", f"{where}: fixation {key[2]} of {user} has no duration; dropped")
        elif np.isfinite(mx) and np.isfinite(my):
            read.add(Fixation(user, media, mx, my, duration, "image_norm"))
        elif np.isfinite(fx) and np.isfinite(fy):
            read.add(Fixation(user, media, fx, fy, duration, "screen_px", _rect(row, col)))
        else:
            read.drop(user, warnings, "no position", f"{where}: fixation {key[2]} of {user} has no position; dropped")


def _detected(table: Table, col: dict[str, int | None], screen: Screen | None, detector: Detector, read: Read) -> None:
    """Fixations detected in the samples of each run of rows with one participant, recording and media."""
    scale, time_col = (1.0, col["time_ms"]) if col["time_ms"] is not None else (1e-3, col["time_us"])
    if time_col is None or col["gx"] is None or col["gy"] is None:
        table.column("Eye movement type")  # neither fixations nor samples: name what is missing
    segments: dict[tuple[str, str, str], list[list[str]]] = {}
    for row in table.rows:
        key = (Table.cell(row, col["user"]), Table.cell(row, col["recording"]), Table.cell(row, col["media"]))
        if key[0]:
            read.users.add(key[0])
            if key[2]:
                segments.setdefault(key, []).append(row)
    for (user, _, media), rows in segments.items():
        time = np.array([Table.number(r, time_col) for r in rows]) * scale
        xy = np.array([[Table.number(r, col["gx"]), Table.number(r, col["gy"])] for r in rows])
        rect = next((r for r in (_rect(row, col) for row in rows) if r is not None), None)
        for _, duration, x, y in detect_fixations(time, xy, screen, detector):
            read.add(Fixation(user, media, float(x), float(y), float(duration), "screen_px", rect))
