"""``memgaze-ray --resume``: go on with the Parquet files a job left in ``--out`` (stopped by Ctrl-C, a kill, a reboot).

The Parquet files an interrupted write left without their footer are deleted; the rows of the others are read
(``path``, ``bytes``, ``mtime_ns``); the rows of a photo that has changed since (size or modification time) are
removed from their file (rewritten atomically); the photos whose rows are there unchanged are left out of the new
job, whose rows are appended as new files. Local photos and a local ``--out`` only: the size and time of a file
in an object store are not read here.
"""

from __future__ import annotations

from pathlib import Path

from memgaze.atomic import atomic_path
from memgaze.errors import fail
from memgaze.runtime.collection import file_identity

RESUME_COLUMNS = ("path", "bytes", "mtime_ns")


def scored_paths(out: Path) -> dict[str, tuple[int, int] | None]:
    """The photos the Parquet files in ``out`` hold rows of, with the (size, time) they were read at."""
    import pyarrow.parquet as pq

    held: dict[str, tuple[int, int] | None] = {}
    for path in sorted(out.glob("*.parquet")):
        names = pq.read_schema(path).names
        if any(column not in names for column in RESUME_COLUMNS):
            fail(f"{path} has no {', '.join(RESUME_COLUMNS)} columns (an older memgaze wrote it); --overwrite to start again")
        table = pq.read_table(path, columns=list(RESUME_COLUMNS))
        for name, size, mtime in zip(*(table[column].to_pylist() for column in RESUME_COLUMNS)):
            held[name] = None if size is None or mtime is None else (size, mtime)
    return held


def drop_rows(out: Path, stale: set[str]) -> int:
    """Remove the rows of the photos ``stale`` from the Parquet files of ``out`` (each rewritten atomically)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    dropped = 0
    for path in sorted(out.glob("*.parquet")):
        table = pq.read_table(path)
        keep = pc.invert(pc.is_in(table["path"], value_set=pa.array(sorted(stale), pa.string())))
        kept = table.filter(keep)
        if kept.num_rows < table.num_rows:
            dropped += table.num_rows - kept.num_rows
            with atomic_path(path) as partial:
                pq.write_table(kept, partial)
    return dropped


def left_to_score(inputs: list[str], out: Path) -> tuple[list[str], int, int]:
    """(the photos of ``inputs`` still to score, how many are done, rows dropped) after repairing ``out``."""
    from memgaze.runtime.raydata import prune_partial_files

    if not out.is_dir():
        return inputs, 0, 0
    prune_partial_files(out)
    held = scored_paths(out)
    todo, done, stale = [], 0, set()
    for path in inputs:
        if path in held and held[path] is not None and held[path] == file_identity(Path(path)):
            done += 1
            continue
        if path in held:
            stale.add(path)
        todo.append(path)
    return todo, done, drop_rows(out, stale) if stale else 0
