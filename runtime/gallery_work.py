"""Where a gallery is built while the run goes: a work folder beside ``DIR`` that survives a kill, and its journal.

``memgaze-run --report DIR`` writes thumbnails into ``.DIR.partial/thumbs/`` and one JSON line per row into
``.DIR.partial/entries.jsonl`` (flushed), then, when the run ends (Ctrl-C included), the page, and puts the folder in
place of ``DIR``. A run killed before that leaves the work folder; a run with ``--resume`` goes on with it (or, when
the earlier run ended, with a copy of ``DIR``: thumbnails hard-linked), its journal being one more output that
:func:`memgaze.runtime.resume.prepare_resume` reconciles with the JSON lines and CSV, so the gallery holds every
row. A run without ``--resume`` starts a new one.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Optional, Tuple

from memgaze.atomic import link_or_copy, swap_dir
from memgaze.errors import fail

JOURNAL = "entries.jsonl"
EntryKey = Tuple[int, str, Optional[int]]  # (source, file, frame in a video)


@dataclass(frozen=True)
class Entry:
    """One row of the gallery: a scored photo or video frame (``score``, ``peak``, thumbnail and heat layer, their
    (width, height), the peak as fractions of the thumbnail), or a file that could not be scored (``error``). ``key``
    is (source, file, frame), ``identity`` the file's (size, modification time in ns), as the rows give them."""

    key: EntryKey
    name: str
    score: float | None = None
    peak: tuple[int, int] = (0, 0)
    peak_at: tuple[float, float] = (0.5, 0.5)
    thumb: str = ""
    heat: str = ""
    size_wh: tuple[int, int] = (0, 0)
    video: bool = False
    error: str | None = None
    identity: Optional[Tuple[int, int]] = None

    def record(self) -> dict[str, object]:
        """The entry as :func:`memgaze.runtime.resume.row_info` reads a row."""
        size, mtime = self.identity or (None, None)
        return {"source": self.key[0], "file": self.key[1], "frame": self.key[2], "bytes": size, "mtime_ns": mtime}

    @staticmethod
    def from_json(line: str) -> Entry:
        data = json.loads(line)
        source, name, frame = data["key"]
        identity = data.get("identity")
        return Entry(**{**data, "key": (int(source), str(name), frame), "peak": tuple(data["peak"]),
                        "peak_at": tuple(data["peak_at"]), "size_wh": tuple(data["size_wh"]),
                        "identity": None if identity is None else tuple(identity)})


def work_folder(folder: Path, resume: bool) -> Path:
    """The work folder of the gallery ``folder``, ready: new, or (``resume``) the one a killed run left, else a copy of
    the gallery an earlier run finished (its journal is then at ``path / JOURNAL``)."""
    path = folder.with_name(f".{folder.name}.partial")
    if not resume:
        shutil.rmtree(path, ignore_errors=True)
    elif not path.exists() and (folder / JOURNAL).is_file():
        shutil.copytree(folder, path, copy_function=_link_or_copy)
    (path / "thumbs").mkdir(parents=True, exist_ok=True)
    return path


def check_target(folder: Path, marker: str) -> None:
    """One-line error, before any scoring, when ``folder`` cannot hold a gallery: a folder memgaze did not write, or a
    place where no folder can be made (a missing or read-only parent)."""
    if folder.exists() and (not folder.is_dir() or (any(folder.iterdir()) and not (folder / marker).is_file())):
        fail(f"--report {folder} exists and is not a gallery memgaze wrote; give a new folder (it is replaced as a whole)")
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        os.rmdir(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))  # what the work folder needs
    except OSError as exc:
        fail(f"cannot write --report {folder}: cannot make a folder in {folder.parent} ({exc.strerror or exc})")


class WorkFolder:
    """The gallery's work folder for ``folder`` (:func:`work_folder`); :attr:`entries` holds its journal's rows (the
    earlier run's first, :attr:`earlier` of them); :meth:`add` appends one."""

    def __init__(self, folder: Path, resume: bool) -> None:
        self.folder = folder
        self.path = work_folder(folder, resume)
        self.entries = self._read_journal()
        self.earlier = len(self.entries)  # the entries of the earlier run, when resumed
        numbers = [int(Path(entry.thumb).stem) for entry in self.entries if entry.thumb]
        self.next_number = max(numbers, default=-1) + 1
        self._journal: IO[str] | None = open(self.path / JOURNAL, "a", encoding="utf-8")

    def _read_journal(self) -> list[Entry]:
        """The journal's whole lines (a line a kill cut short is dropped, and cut from the file)."""
        journal = self.path / JOURNAL
        if not journal.is_file():
            return []
        entries, good = [], 0
        with open(journal, "rb") as handle:
            for raw in handle:
                try:
                    entries.append(Entry.from_json(raw.decode("utf-8")))
                except (ValueError, KeyError, TypeError):
                    break
                if not raw.endswith(b"\n"):
                    entries.pop()
                    break
                good += len(raw)
        os.truncate(journal, good)
        return entries

    def add(self, entry: Entry) -> None:
        """Keep ``entry`` and journal it (flushed: a kill loses at most this line)."""
        self.entries.append(entry)
        self.next_number += bool(entry.thumb)
        assert self._journal is not None
        self._journal.write(json.dumps(asdict(entry)) + "\n")
        self._journal.flush()

    def finish(self, files: dict[str, str]) -> None:
        """Write ``files`` (name → text) into the work folder and put it in place of the gallery folder."""
        if self._journal is not None:
            self._journal.close()
            self._journal = None
        for name, text in files.items():
            (self.path / name).write_text(text, encoding="utf-8")
        swap_dir(self.path, self.folder)


def _link_or_copy(source: str, target: str) -> None:
    """Thumbnails hard-linked (they are never rewritten), anything else copied (the journal grows)."""
    if source.endswith(".jpg"):
        link_or_copy(source, target)
    else:
        shutil.copy2(source, target)
