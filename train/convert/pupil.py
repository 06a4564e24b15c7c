"""Pupil Labs fixations mapped onto a surface (a rectangle framed by AprilTag markers: the image itself, or
the screen it was shown on, as ``--surface`` says).

- **Pupil Core** (Pupil Player's Surface Tracker export): ``fixations_on_surface_<name>.csv`` with
  ``fixation_id``, ``start_timestamp`` (Pupil time, s), ``duration`` (ms), ``norm_pos_x``, ``norm_pos_y``
  (the surface normalized, **origin bottom-left**) and ``on_surf``; one row per world frame of a fixation, so
  a fixation's position is the mean of its rows. User: ``--user``, else the recording folder's name (the
  export sits in ``<recording>/exports/<n>/surfaces/``).
- **Pupil Cloud / Neon** (Marker Mapper enrichment export): ``fixations.csv`` with ``section id``,
  ``recording id``, ``fixation id``, ``start timestamp [ns]``, ``duration [ms]``, ``fixation detected on
  surface``, ``fixation x [normalized]``, ``fixation y [normalized]`` (the surface normalized, **origin
  top-left**). User: the ``wearer name`` of the section in ``sections.csv`` beside it, else the recording id;
  or ``--user``.
- **Image**: ``--image NAME``; or a timeline of events (``--events``: Pupil Core's ``annotations.csv``,
  ``timestamp`` and ``label``; Pupil Cloud's ``events.csv``, ``recording id``, ``timestamp [ns]`` and
  ``name``), each event naming the image shown from then on (an event naming no stimulus ends it); else the
  Core surface's name.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable

import numpy as np

from memgaze.console import WarningCounter
from memgaze.errors import fail
from memgaze.train.convert.fixations import Fixation, Read
from memgaze.train.convert.tables import Table
from memgaze.train.convert.timeline import Timeline

SURFACES = {"image": "image_norm", "screen": "screen_norm"}
CORE_NAME = re.compile(r"^fixations_on_surface_(.+)\.csv$")


def _frame(surface: str) -> str:
    if surface not in SURFACES:
        fail(f"--surface must be one of {', '.join(SURFACES)}, got {surface!r}")
    return SURFACES[surface]


def _events(path: Path | None, time_names: tuple[str, ...], label_names: tuple[str, ...], known: Callable[[str], bool],
            scale: float) -> dict[str, Timeline[str]]:
    """Timelines by recording id ('' for all) from an events table: each event names the image shown from then on."""
    timelines: dict[str, Timeline[str]] = {}
    if path is None:
        return timelines
    table = Table(path)
    time_col, label_col = table.column(*time_names), table.column(*label_names)
    recording_col = table.column("recording id", required=False)
    for row in table.rows:
        label, time = Table.cell(row, label_col), Table.number(row, time_col)
        if np.isfinite(time):
            timelines.setdefault(Table.cell(row, recording_col), Timeline()).add(time * scale, label if known(label) else None)
    return timelines


def read_pupil_core(paths: list[Path], surface: str, user: str | None, image: str | None, events: Path | None,
                    known: Callable[[str], bool], warnings: WarningCounter) -> Read:
    """Fixations of Pupil Core surface exports (one file per surface)."""
    frame, read = _frame(surface), Read()
    timeline = _events(events, ("timestamp",), ("label",), known, 1.0).get("")
    for path in paths:
        match = CORE_NAME.match(path.name)
        if match is None:
            fail(f"{path}: expected Pupil Player's fixations_on_surface_<name>.csv")
        who = user or (path.parents[3].name if len(path.parents) > 3 else path.stem)
        table = Table(path)
        col = {k: table.column(k) for k in ("fixation_id", "start_timestamp", "duration", "norm_pos_x", "norm_pos_y")}
        grouped: dict[str, list[list[str]]] = {}
        for row in table.rows:
            grouped.setdefault(Table.cell(row, col["fixation_id"]), []).append(row)
        for fixation_id, rows in grouped.items():
            xy = np.array([[Table.number(r, col["norm_pos_x"]), Table.number(r, col["norm_pos_y"])] for r in rows])
            start, duration = Table.number(rows[0], col["start_timestamp"]), Table.number(rows[0], col["duration"])
            shown = image or (timeline.at(start) if timeline is not None else match.group(1))
            _add(read, warnings, who, shown, xy.mean(axis=0), duration, frame, f"{path}: fixation {fixation_id}", flip_y=True)
    return read


def read_pupil_cloud(paths: list[Path], surface: str, user: str | None, image: str | None, events: Path | None,
                     known: Callable[[str], bool], warnings: WarningCounter) -> Read:
    """Fixations of Pupil Cloud Marker Mapper exports (``fixations.csv``, with ``sections.csv`` beside it)."""
    frame, read = _frame(surface), Read()
    timelines = _events(events, ("timestamp [ns]",), ("name",), known, 1.0)
    for path in paths:
        table = Table(path)
        col = {k: table.column(k) for k in ("recording id", "fixation id", "start timestamp [ns]", "duration [ms]",
                                            "fixation x [normalized]", "fixation y [normalized]")}
        wearers = _wearers(path.with_name("sections.csv"))
        for row in table.rows:
            recording = Table.cell(row, col["recording id"])
            who = user or wearers.get(recording) or recording
            start = Table.number(row, col["start timestamp [ns]"])
            timeline = timelines.get(recording) or timelines.get("")
            shown = image or (timeline.at(start) if timeline is not None else None)
            if image is None and timeline is None:
                fail("a Marker Mapper export does not name the image: give --image NAME or --events events.csv")
            xy = np.array([Table.number(row, col["fixation x [normalized]"]), Table.number(row, col["fixation y [normalized]"])])
            _add(read, warnings, who, shown, xy, Table.number(row, col["duration [ms]"]), frame,
                 f"{path}: fixation {Table.cell(row, col['fixation id'])} of recording {recording}", flip_y=False)
    return read


def _wearers(sections: Path) -> dict[str, str]:
    """recording id → wearer name, from the export's sections.csv where there is one."""
    if not sections.is_file():
        return {}
    table = Table(sections)
    rec, wearer = table.column("recording id", required=False), table.column("wearer name", required=False)
    return {Table.cell(r, rec): Table.cell(r, wearer) for r in table.rows if Table.cell(r, wearer)} if rec is not None else {}


def _add(read: Read, warnings: WarningCounter, user: str, shown: object, xy: np.ndarray, duration: float, frame: str,
         where: str, flip_y: bool) -> None:
    """One fixation, or one counted drop with its reason."""
    if not isinstance(shown, str) or not shown:
        read.drop(user, warnings, "no image shown", f"{where}: no image was shown; dropped")
    elif not np.isfinite(xy).all():
        read.drop(user, warnings, "no position", f"{where}: not located on the surface; dropped")
    elif not np.isfinite(duration) or duration <= 0:
        read.drop(user, warnings, "no duration", f"{where}: no duration; dropped")
    else:
        read.add(Fixation(user, shown, float(xy[0]), float(1.0 - xy[1] if flip_y else xy[1]), float(duration), frame))
