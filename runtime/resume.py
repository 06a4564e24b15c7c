"""Resumable collection runs (``memgaze-run --resume``): what the rows already written say was scored.

Each row of a file names it (``source``, ``file``) with the file's size and modification time when it was read
(``bytes``, ``mtime_ns``). A rerun with ``--resume`` reads the JSON lines, CSV and gallery journal it is given, and:

* cuts a last line left unfinished (a ``kill -9`` or a power cut during a write) or unreadable;
* drops the rows of a file that has changed since (size or time), and the rows that one output holds and another
  lacks (a kill between the two writes), so that every output agrees; those files are scored again;
* passes over, while reading the collection, every photo whose rows are there with the same size and time (a
  video: the frames up to its last row), and appends the rest.

Nothing is kept in memory but each file's (size, time) and last frame. Rows of files that are no longer in the
collection are kept as they are.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from memgaze.atomic import atomic_path
from memgaze.errors import fail
from memgaze.runtime.collection import file_identity
from memgaze.runtime.gallery_work import Entry
from memgaze.runtime.sinks import CSV_COLUMNS
from memgaze.runtime.sources import FrameSource

FileKey = tuple[int, str]  # (source, file)


@dataclass(frozen=True)
class RowInfo:
    """What resuming needs of one row: its file, the file's (size, time) then, and its frame in a video."""

    key: FileKey
    identity: tuple[int, int] | None
    frame: int | None


@dataclass
class Scored:
    """A file's rows in an output: the (size, time) they were scored at, and the last video frame (-1: a photo)."""

    identity: tuple[int, int] | None
    last_frame: int = -1


def _int(value: object) -> int | None:
    return None if value in (None, "") else int(str(value))


def row_info(record: dict[str, object]) -> RowInfo | None:
    """The :class:`RowInfo` of a parsed row (JSON or CSV); None for a row of a live frame (no file)."""
    if not record.get("file"):
        return None
    size, mtime = _int(record.get("bytes")), _int(record.get("mtime_ns"))
    return RowInfo((_int(record.get("source")) or 0, str(record["file"])),
                   None if size is None or mtime is None else (size, mtime), _int(record.get("frame")))


class RowOutput:
    """One output of an earlier run, read one whole line at a time: ``--jsonl`` (kind "jsonl"), ``--csv`` ("csv") or the
    journal of its ``--report`` gallery ("gallery", :mod:`memgaze.runtime.gallery_work`)."""

    def __init__(self, path: Path, kind: str) -> None:
        self.path = path
        self.kind = kind
        self.repaired = 0  # bytes of an unfinished or damaged last line cut off

    def lines(self) -> Iterator[tuple[str, RowInfo | None]]:
        """(line with its end, its row info) of every row; the CSV header is checked and not given."""
        with open(self.path, encoding="utf-8", newline="") as handle:
            if self.kind == "csv":
                header = handle.readline()
                if header and header.rstrip("\r\n").split(",") != list(CSV_COLUMNS):
                    fail(f"--csv {self.path} has other columns than this memgaze writes; --overwrite to start it again")
            for line in handle:
                yield line, self._parse(line)

    def _parse(self, line: str) -> RowInfo | None:
        if self.kind == "jsonl":
            return row_info(json.loads(line))
        if self.kind == "gallery":
            return row_info(Entry.from_json(line).record())
        return row_info(next(csv.DictReader([line], CSV_COLUMNS)))

    def repair(self) -> None:
        """Cut the last line when it is unfinished (no line end) or cannot be parsed; one-line error for a damaged line
        before it (not a file memgaze wrote)."""
        size, good, number = self.path.stat().st_size, 0, 0
        with open(self.path, "rb") as handle:
            for number, raw in enumerate(handle, 1):
                if self._whole(raw, number):
                    good += len(raw)
                elif good + len(raw) < size:
                    fail(f"line {number} of {self.path} is not a row memgaze wrote; --overwrite to start it again")
        if good < size:
            self.repaired = size - good
            os.truncate(self.path, good)

    def _whole(self, raw: bytes, number: int) -> bool:
        if not raw.endswith(b"\n"):
            return False
        if self.kind == "csv" and number == 1:
            return True
        try:
            self._parse(raw.decode("utf-8"))
        except (ValueError, UnicodeDecodeError, KeyError, TypeError):
            return False
        return True

    def scored(self) -> dict[FileKey, Scored]:
        """Every file this output holds rows of."""
        files: dict[FileKey, Scored] = {}
        for _, info in self.lines():
            if info is not None:
                entry = files.setdefault(info.key, Scored(info.identity))
                entry.last_frame = max(entry.last_frame, -1 if info.frame is None else info.frame)
        return files

    def keep_only(self, keep: Callable[[RowInfo], bool]) -> None:
        """Rewrite the file (atomically) without the rows ``keep`` refuses."""
        with atomic_path(self.path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as out:
            if self.kind == "csv":
                out.write(",".join(CSV_COLUMNS) + "\n")
            for line, info in self.lines():
                if info is None or keep(info):
                    out.write(line)


class Resume:
    """What the outputs of an earlier run hold, as :class:`memgaze.runtime.reader.CollectionReader` asks it: a photo is
    done when every output holds its row at the file's current size and time; a video up to the last frame all hold."""

    def __init__(self, files: dict[FileKey, Scored]) -> None:
        self.files = files
        self.again = 0  # files whose rows were removed, to be scored again (changed since, or not in every output)
        self.repaired = 0  # unfinished last lines cut

    def photo_done(self, source: int, name: str, identity: tuple[int, int] | None) -> bool:
        entry = self.files.get((source, name))
        return entry is not None and identity is not None and entry.identity == identity

    def last_frame(self, source: int, name: str, identity: tuple[int, int] | None) -> int:
        return self.files[(source, name)].last_frame if self.photo_done(source, name, identity) else -1

    @property
    def rows(self) -> int:
        return len(self.files)


def _agreed(outputs: list[dict[FileKey, Scored]], current: Callable[[FileKey], tuple[int, int] | None]) -> dict[FileKey, Scored]:
    """The files every output holds at one (size, time) that is still the file's, each up to the last frame all hold."""
    first, *others = outputs
    agreed: dict[FileKey, Scored] = {}
    for key, entry in first.items():
        same = [other.get(key) for other in others]
        if entry.identity is None or any(s is None or s.identity != entry.identity for s in same):
            continue
        if current(key) != entry.identity:
            continue
        agreed[key] = Scored(entry.identity, min([entry.last_frame, *(s.last_frame for s in same if s is not None)]))
    return agreed


def prepare_resume(outputs: list[tuple[Path, str]], sources: list[FrameSource]) -> Resume:
    """Read, repair and reconcile the outputs ``outputs`` ((path, "jsonl" | "csv" | "gallery"); missing ones are empty)
    of a run over ``sources``; returns what is done. Rows of files still in the collection are dropped where the file has
    changed or where not every output holds them; rows of other files are kept."""
    paths = {(index, item.name): item.path for index, source in enumerate(sources) for item in source.items}
    existing = [RowOutput(path, kind) for path, kind in outputs if path.is_file()]
    for output in existing:
        output.repair()
    held = [output.scored() for output in existing]
    if len(existing) < len(outputs):
        held.append({})  # a new output holds nothing: every file is scored again for it
    identities: dict[FileKey, tuple[int, int] | None] = {}

    def current(key: FileKey) -> tuple[int, int] | None:
        if key not in identities:
            identities[key] = file_identity(paths[key]) if key in paths else None
        return identities[key]

    agreed = _agreed(held, current) if held else {}
    resume = Resume(agreed)
    resume.repaired = sum(1 for output in existing if output.repaired)

    def keep(info: RowInfo) -> bool:
        if info.key not in paths:
            return True  # no longer in the collection: kept as it is
        entry = agreed.get(info.key)
        return entry is not None and (info.frame is None or info.frame <= entry.last_frame)

    again = {key for files in held for key in files if key in paths and key not in agreed}
    resume.again = len(again)
    for output, files in zip(existing, held):
        if any(key in again for key in files) or any(key in agreed and files[key].last_frame > agreed[key].last_frame
                                                      for key in files):
            output.keep_only(keep)
    return resume
