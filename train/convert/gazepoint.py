"""Gazepoint exports (Gazepoint Analysis ``<user>_all_gaze.csv`` or ``<user>_fixations.csv``, or a CSV logged
from the Open Gaze API): one row per sample, with the tracker's own fixation filter in the ``FPOG`` fields.

- ``FPOGX``, ``FPOGY``: the fixation's point of gaze as fractions of the screen ((0, 0) top-left, (1, 1)
  bottom-right); ``FPOGD``: its duration so far (s); ``FPOGID``: its number; ``FPOGV``: 1 where valid.
- A fixation is the last valid row of its ``FPOGID`` (its full duration and final mean position), per image.
- **Image**: ``MEDIA_NAME`` (rows without one are outside any image). **User**: ``USER`` where the export
  has that column, else ``--user``, else the file name before ``_all_gaze`` / ``_fixations``.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from memgaze.console import WarningCounter
from memgaze.train.convert.fixations import Fixation, Read
from memgaze.train.convert.tables import Table

SUFFIX = re.compile(r"_(all_gaze|fixations)$", re.IGNORECASE)


def read_gazepoint(paths: list[Path], user: str | None, warnings: WarningCounter) -> Read:
    """Fixations of every Gazepoint CSV."""
    read = Read()
    for path in paths:
        table = Table(path)
        col = {k: table.column(k) for k in ("MEDIA_NAME", "FPOGX", "FPOGY", "FPOGD", "FPOGID", "FPOGV")}
        user_col = table.column("USER", required=False)
        default_user = user or SUFFIX.sub("", path.stem)
        last: dict[tuple[str, str, str], tuple[int, list[str]]] = {}
        invalid: dict[tuple[str, str, str], int] = {}
        for lineno, row in enumerate(table.rows, start=2):
            who = (Table.cell(row, user_col) if user is None else "") or default_user
            key = (who, Table.cell(row, col["MEDIA_NAME"]), Table.cell(row, col["FPOGID"]))
            if Table.number(row, col["FPOGV"]) == 1:
                if key not in last or Table.number(row, col["FPOGD"]) >= Table.number(last[key][1], col["FPOGD"]):
                    last[key] = (lineno, row)
            else:
                invalid.setdefault(key, lineno)
        read.users.update(key[0] for key in (*last, *invalid))
        for key, lineno in invalid.items():
            if key not in last and key[2]:
                read.drop(key[0], warnings, "invalid fixation", f"{path}:{lineno}: fixation {key[2]} of {key[0]} is never valid (FPOGV 0); dropped")
        for (who, media, fixation_id), (lineno, row) in last.items():
            x, y, duration_s = (Table.number(row, col[k]) for k in ("FPOGX", "FPOGY", "FPOGD"))
            where = f"{path}:{lineno}: fixation {fixation_id} of {who}"
            if not media:
                read.drop(who, warnings, "no image shown", f"{where} while no media was shown; dropped")
            elif not (np.isfinite([x, y, duration_s]).all() and duration_s > 0):
                read.drop(who, warnings, "no position", f"{where} has no position or duration; dropped")
            else:
                read.add(Fixation(who, media, x, y, duration_s * 1000.0, "screen_norm"))
    return read
