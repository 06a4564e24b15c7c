"""Scoring beyond one machine on Ray Data (``pip install "memgaze[ray]"``): photos in, Parquet out.

:class:`BundleScorer` is a callable class for ``Dataset.map_batches``: each Ray worker (an actor) opens the
bundle once and scores batches of ``{"bytes", "path"}`` rows, as ``ray.data.read_binary_files(...,
include_paths=True)`` reads them, decoding each photo as ``memgaze-run`` does (the same reduced JPEG decode,
resize and engine, so the same scores). :func:`score_to_parquet` (and ``memgaze-ray``) reads local collections
(folders, globs, lists of paths, as ``memgaze-run --source`` takes them) or URIs that Ray's readers and
pyarrow's filesystems open (``s3://``, ``gs://``…), scores them on an actor pool and writes Parquet with
``ds.write_parquet``. The bundle travels to the workers as bytes, so nodes need no shared file system. Ray
does the scheduling, on this machine (``ray.init()``) or on a cluster (``ray.init(address=...)``).

Columns: ``path`` (as Ray read it), ``file`` (relative to its source's root, as ``memgaze-run`` names it),
``score``, ``peak_x``, ``peak_y`` (full-size pixels), ``width``, ``height``, ``bytes``, ``mtime_ns`` (the file's size
and modification time, what ``resume`` matches), ``error`` (why a file could not be scored: empty, truncated,
undecodable; its score is null), and with ``heatmaps`` the map (``[h][w]`` floats). A damaged file is a row with its
error, never the end of the job.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from memgaze.console import console
from memgaze.errors import fail
from memgaze.media import PHOTO_SUFFIXES, UnreadableImage, decode_image_for
from memgaze.runtime.collection import file_identity
from memgaze.runtime.ray_resume import left_to_score

INSTALL_HINT = 'pip install "memgaze[ray]"'
NAMED_ERRORS = 5  # files named in the summary of those that could not be scored


def require_ray() -> Any:
    """The ``ray`` module with Ray Data; one-line error naming the extra to install."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        fail(f"Ray Data is not installed: {INSTALL_HINT}")
    return ray


@dataclass(frozen=True)
class PackedBundle:
    """A deploy bundle's files as bytes (``manifest.json`` and every file it lists), so that a worker on any node opens it
    without a shared file system."""

    name: str
    files: dict[str, bytes]

    def unpack(self, folder: Path) -> Path:
        """Write the bundle into ``folder``; returns its path there."""
        root = folder / self.name
        root.mkdir(parents=True)
        for name, data in self.files.items():
            (root / name).write_bytes(data)
        return root


def pack_bundle(bundle: str | Path) -> PackedBundle:
    """Read a bundle (checksums verified) into a :class:`PackedBundle`."""
    from memgaze.manifest import MANIFEST_NAME
    from memgaze.runtime.bundle import load_bundle

    opened = load_bundle(bundle)
    names = [MANIFEST_NAME, *opened.manifest.files]
    return PackedBundle(opened.root.resolve().name, {name: (opened.root / name).read_bytes() for name in names})


def relative_name(path: str, roots: list[str]) -> str:
    """``path`` relative to the first of ``roots`` it lies under (POSIX), else ``path`` itself."""
    for root in roots:
        prefix = root.rstrip("/") + "/"
        if path.startswith(prefix):
            return path[len(prefix):]
    return path


class BundleScorer:
    """Callable class for ``Dataset.map_batches``: opens ``bundle`` (a folder every worker can read, a
    :class:`PackedBundle`, or a Ray object reference to one) once per worker on ``backend`` with ``threads`` engine
    threads, then scores each batch of
    ``{"bytes", "path"}`` rows into the columns of this module's docstring. ``roots``: the folders (or URI prefixes
    without their scheme) that ``file`` is relative to."""

    def __init__(self, bundle: Any, *, backend: str = "onnxruntime", precision: str | None = None,
                 user: str | None = None, threads: int = 1, heatmaps: bool = False, roots: list[str] | None = None) -> None:
        from memgaze.runtime.api import load

        if not isinstance(bundle, (str, Path, PackedBundle)):  # an ObjectRef: the bundle sent once through the object store
            bundle = require_ray().get(bundle)
        self._unpacked = None
        if isinstance(bundle, PackedBundle):
            self._unpacked = tempfile.TemporaryDirectory(prefix="memgaze-bundle-")
            bundle = str(bundle.unpack(Path(self._unpacked.name)))
        self.model = load(bundle, backend, precision, user, threads=threads)
        self.heatmaps = heatmaps
        self.roots = roots or []

    def __call__(self, batch: dict[str, np.ndarray]) -> Any:
        import pyarrow as pa

        paths = [str(path) for path in batch["path"]]
        checked: list[tuple[np.ndarray, tuple[int, int] | None]] = []
        errors: list[str | None] = []
        for data in batch["bytes"]:
            try:
                checked.append(decode_image_for(bytes(data), self.model.input_size))
                errors.append(None)
            except Exception as exc:  # noqa: BLE001 - a damaged file is a row with its error, never the end of the job
                errors.append(str(exc) if isinstance(exc, UnreadableImage) else f"cannot decode this file: {exc}")
        scored = iter(zip(self.model.predict_checked(checked), checked) if checked else [])
        columns: dict[str, list[Any]] = {k: [] for k in ("score", "peak_x", "peak_y", "width", "height", "heatmap")}
        for error in errors:
            prediction, (image, full_shape) = (None, (None, None)) if error else next(scored)
            shape = None if image is None else (full_shape or image.shape[:2])
            columns["score"].append(None if prediction is None else prediction.score)
            columns["peak_x"].append(None if prediction is None else prediction.peak[0])
            columns["peak_y"].append(None if prediction is None else prediction.peak[1])
            columns["height"].append(None if shape is None else int(shape[0]))
            columns["width"].append(None if shape is None else int(shape[1]))
            columns["heatmap"].append(None if prediction is None else prediction.heatmap.tolist())
        table = {
            "path": pa.array(paths, pa.string()),
            "file": pa.array([relative_name(path, self.roots) for path in paths], pa.string()),
            "score": pa.array(columns["score"], pa.float32()),
            "peak_x": pa.array(columns["peak_x"], pa.int32()),
            "peak_y": pa.array(columns["peak_y"], pa.int32()),
            "width": pa.array(columns["width"], pa.int32()),
            "height": pa.array(columns["height"], pa.int32()),
            "bytes": pa.array([len(data) for data in batch["bytes"]], pa.int64()),
            "mtime_ns": pa.array([None if is_uri(path) else local_mtime_ns(path) for path in paths], pa.int64()),
            "error": pa.array(errors, pa.string()),
        }
        if self.heatmaps:
            table["heatmap"] = pa.array(columns["heatmap"], pa.list_(pa.list_(pa.float32())))
        return pa.table(table)


def local_mtime_ns(path: str) -> int | None:
    """A local file's modification time (ns), what a resumed job matches; None when it cannot be read here."""
    identity = file_identity(Path(path))
    return None if identity is None else identity[1]


def is_uri(text: str) -> bool:
    """A URI for Ray's readers (``s3://bucket/photos/``), not a local path."""
    return "://" in text


def resolve_inputs(sources: list[str], recursive: bool = True) -> tuple[list[str], list[str]]:
    """(paths or URIs for ``read_binary_files``, the roots names are relative to). Local sources are listed as
    ``memgaze-run`` lists them (folders, globs, lists of paths; videos left out); URIs go to Ray as they are."""
    from memgaze.runtime.sources import collection_items, source_spec

    inputs: list[str] = []
    roots: list[str] = []
    for source in sources:
        if is_uri(source):
            inputs.append(source)
            roots.append(source.split("://", 1)[1])
            continue
        spec = source_spec(source, recursive)
        if spec.live:
            fail(f"{source} is a live source; memgaze-ray scores files (a folder, a glob, a list of paths or URIs)")
        items = [item for item in collection_items(spec) if not item.video]
        if not items:
            fail(f"{source} holds no image (memgaze-ray scores photos; score videos with memgaze-run)")
        inputs += [str(item.path.resolve()) for item in items]
        root = Path(str(spec.target)).resolve()
        roots.append(str(root.parent if spec.kind in ("file", "list") else root))
    return inputs, roots


@dataclass
class RaySummary:
    """What ``--out`` holds after a Ray run: rows, rows without a score and the first few of those files, and (resumed)
    how many photos an earlier job had scored."""

    rows: int
    errors: int
    named: list[str]
    resumed: int = 0


def _summary(out: str, resumed: int = 0) -> RaySummary:
    import pyarrow.parquet as pq

    table = pq.read_table(out, columns=["file", "error"])
    failed = [name for name, error in zip(table["file"].to_pylist(), table["error"].to_pylist()) if error]
    return RaySummary(table.num_rows, len(failed), failed[:NAMED_ERRORS], resumed)


def prune_partial_files(folder: Path) -> int:
    """Delete the Parquet files in ``folder`` that an interrupted write left without their footer; returns how many."""
    import pyarrow.parquet as pq

    pruned = 0
    for path in folder.glob("*.parquet"):
        try:
            pq.read_metadata(path)
        except Exception:  # noqa: BLE001 - a truncated file, whatever pyarrow calls it
            path.unlink()
            pruned += 1
    return pruned


def _check_output(out: str, overwrite: bool) -> None:
    from pyarrow import fs

    try:
        filesystem, path = fs.FileSystem.from_uri(out) if is_uri(out) else (fs.LocalFileSystem(), str(Path(out).resolve()))
        info = filesystem.get_file_info(path)
    except Exception as exc:  # noqa: BLE001 - an unknown scheme, missing credentials
        fail(f"cannot use --out {out}: {exc}")
    if info.type == fs.FileType.File:
        fail(f"--out {out} is a file; give a folder (or URI prefix) for the Parquet files")
    if info.type == fs.FileType.Directory and not overwrite:
        entries = filesystem.get_file_info(fs.FileSelector(path))
        if entries:
            fail(f"--out {out} already holds files; give a new folder, or --overwrite to replace its contents")


def score_to_parquet(
    sources: list[str], out: str, bundle: str | Path, *, workers: int = 1, batch: int = 16, threads: int = 1,
    backend: str = "onnxruntime", precision: str | None = None, user: str | None = None, heatmaps: bool = False,
    recursive: bool = True, address: str | None = None, overwrite: bool = False, resume: bool = False,
) -> RaySummary:
    """Score the photos of ``sources`` (local collections or URIs) with ``bundle`` on ``workers`` Ray actors (each
    ``threads`` CPUs, ``batch`` photos per engine call) and write Parquet files into ``out`` (a folder or a URI prefix).

    Connects to the Ray cluster at ``address`` ("auto": the one this machine belongs to), else to the one already
    initialised, else starts a local one. After Ctrl-C the Parquet files in a local ``out`` are complete (those an
    interrupted write left unfinished are deleted); an object store never shows a partly uploaded file. ``resume``:
    go on with what ``out`` holds (:mod:`memgaze.runtime.ray_resume`)."""
    ray = require_ray()
    from ray.data._internal.savemode import SaveMode

    inputs, roots = resolve_inputs(sources, recursive)
    resumed = 0
    if resume:
        if overwrite or is_uri(out) or any(map(is_uri, sources)):
            fail("--resume goes on with local photos and a local --out (and without --overwrite)")
        if Path(out).exists() and not Path(out).is_dir():
            fail(f"--out {out} is a file; give the folder of the Parquet files to go on with")
        inputs, resumed, dropped = left_to_score(inputs, Path(out).resolve())
        console.print(f"resuming: {resumed} photo(s) already scored in {out}" + (f", {dropped} row(s) of changed photos removed"
                                                                                   if dropped else ""), soft_wrap=True)
        if not inputs:
            return _summary(str(Path(out).resolve()), resumed)
    else:
        _check_output(out, overwrite)
    packed = pack_bundle(bundle)
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING)
    local_out = None if is_uri(out) else Path(out).resolve()
    try:
        # listed local files are images already; a URI prefix is listed by Ray, keeping images only
        extensions = [s.lstrip(".") for suffix in sorted(PHOTO_SUFFIXES) for s in (suffix, suffix.upper())]
        # Reading bytes and writing Parquet ask for no CPU (the actors may hold every CPU: a 2-CPU instance with two
        # one-CPU actors would otherwise never schedule a read), as many at a time as there are workers.
        # Listed files are read in blocks of one batch (Ray's default, a block a file for a few thousand, costs a task each).
        remote = any(map(is_uri, sources))
        dataset = ray.data.read_binary_files(inputs, include_paths=True, num_cpus=0, concurrency=workers,
                                             file_extensions=extensions if remote else None,
                                             override_num_blocks=None if remote else max(1, -(-len(inputs) // batch)))
        scored = dataset.map_batches(
            BundleScorer, batch_size=batch, batch_format="numpy", num_cpus=threads,
            compute=ray.data.ActorPoolStrategy(size=workers),
            fn_constructor_kwargs={"bundle": ray.put(packed), "backend": backend, "precision": precision, "user": user,
                                   "threads": threads, "heatmaps": heatmaps, "roots": roots},
        )
        scored.write_parquet(str(local_out) if local_out else out, mode=SaveMode.OVERWRITE if overwrite else SaveMode.APPEND,
                             ray_remote_args={"num_cpus": 0}, concurrency=workers)
    except KeyboardInterrupt:
        if started:
            ray.shutdown()  # stops the workers, so no file grows any more
        if local_out is not None and local_out.is_dir():
            prune_partial_files(local_out)
        raise
    finally:
        if started and ray.is_initialized():
            ray.shutdown()
    return _summary(str(local_out) if local_out else out, resumed)
