"""Reading an export's delimited table: its header and rows, columns found by any of their names."""

from __future__ import annotations

import csv
import math
from pathlib import Path

from memgaze.errors import fail


class Table:
    """A CSV/TSV file read whole (exports of one session are small): ``header`` and ``rows``."""

    def __init__(self, path: Path, delimiter: str = ",") -> None:
        if not path.is_file():
            fail(f"{path} is not a file")
        try:
            with open(path, newline="", encoding="utf-8-sig") as handle:
                reader = csv.reader(handle, delimiter=delimiter)
                self.header = [name.strip() for name in next(reader, [])]
                self.rows = [row for row in reader if row and any(cell.strip() for cell in row)]
        except (UnicodeDecodeError, csv.Error) as exc:
            fail(f"{path}: not a readable {'TSV' if delimiter == chr(9) else 'CSV'} file ({exc})")
        self.path = path
        self._index = {name.lower(): i for i, name in enumerate(self.header)}

    def column(self, *names: str, required: bool = True) -> int | None:
        """Index of the first of ``names`` in the header (case-insensitive); a one-line error when required."""
        for name in names:
            if name.lower() in self._index:
                return self._index[name.lower()]
        if required:
            fail(f"{self.path}: no column {names[0]!r} in its header (is it the right export?)")
        return None

    @staticmethod
    def cell(row: list[str], column: int | None) -> str:
        """The stripped cell, or '' where the row is short or the column absent."""
        return row[column].strip() if column is not None and column < len(row) else ""

    @staticmethod
    def number(row: list[str], column: int | None) -> float:
        """The cell as a float (a decimal comma accepted), NaN when empty or not a number."""
        text = Table.cell(row, column).replace(",", ".")
        try:
            value = float(text)
        except ValueError:
            return math.nan
        return value
