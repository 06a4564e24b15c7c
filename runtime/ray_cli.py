"""``memgaze-ray``: score photo collections on Ray Data, on this machine or an existing cluster, into Parquet."""

from __future__ import annotations

import logging
import time
from typing import List, Optional

import typer

from memgaze.builtin import resolve
from memgaze.console import console
from memgaze.errors import run_cli
from memgaze.runtime.backends import BACKENDS, PRECISIONS
from memgaze.runtime.raydata import score_to_parquet
from memgaze.version import version_option

app = typer.Typer(add_completion=False, help=__doc__, pretty_exceptions_enable=False)


@app.command()
def score(
    sources: List[str] = typer.Argument(..., help="Folders, globs, text files of paths, or URIs Ray reads (s3://bucket/photos/, gs://…)."),
    out: str = typer.Option(..., "--out", help="Folder or URI prefix for the Parquet files (path, file, score, peak_x, peak_y, width, height, bytes, mtime_ns, error)."),
    model: Optional[str] = typer.Option(
        None, "--model", help=r"Deploy bundle folder on this machine (or a built-in model's name), sent to the workers as bytes \[the built-in model]."
    ),
    address: Optional[str] = typer.Option(
        None, "--address", help="Ray cluster to run on ('auto': the one this machine belongs to; default: a local one, or RAY_ADDRESS)."
    ),
    workers: int = typer.Option(1, "--workers", min=1, help="Ray actors scoring in parallel, each holding the model once."),
    threads: int = typer.Option(1, "--threads", min=1, help="CPUs per worker (ONNX Runtime threads)."),
    batch: int = typer.Option(16, "--batch", min=1, help="Photos per engine call."),
    backend: str = typer.Option("onnxruntime", "--backend", help=f"{' | '.join(BACKENDS)}."),
    precision: Optional[str] = typer.Option(None, "--precision", help=f"{' | '.join(PRECISIONS)}; default: the best available."),
    user: Optional[str] = typer.Option(None, "--user", help="Predict this user's gaze (one of the bundle's users)."),
    heatmaps: bool = typer.Option(False, "--heatmaps", help=r"Also write each heatmap (\[h]\[w] floats)."),
    recursive: bool = typer.Option(True, "--recursive/--no-recursive", help="Read local folders' sub-folders too."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace what --out already holds."),
    resume: bool = typer.Option(
        False, "--resume", help="Go on with the Parquet files already in --out: photos scored unchanged (path, size, modification "
        "time) are left out, the rest appended (local photos and --out).",
    ),
    quiet: bool = typer.Option(False, "--quiet", help="No Ray Data progress output."),
    version: bool = version_option(),
) -> None:
    """Score photos on a Ray actor pool (one model per worker) and write Parquet: what memgaze-run does, across machines."""
    if quiet or not console.is_terminal:
        logging.getLogger("ray.data").setLevel(logging.WARNING)
    start = time.perf_counter()
    summary = score_to_parquet(sources, out, str(resolve(model)), workers=workers, batch=batch, threads=threads, backend=backend,
                               precision=precision, user=user, heatmaps=heatmaps, recursive=recursive, address=address,
                               overwrite=overwrite, resume=resume)
    seconds = time.perf_counter() - start
    failed = f"; {summary.errors} without a score ({', '.join(summary.named)}{', …' if summary.errors > len(summary.named) else ''})" \
        if summary.errors else ""
    scored = summary.rows - summary.resumed
    console.print(f"memgaze-ray: {scored} photos in {seconds:.1f} s ({scored / seconds:.1f}/s, Ray start-up "
                  f"included) on {workers} worker(s) → {out}{failed}"
                  + (f"; {summary.resumed} scored by an earlier job, {summary.rows} rows in all" if summary.resumed else ""),
                  soft_wrap=True)


def main() -> None:
    """Console entry point; errors are one line."""
    run_cli(app)
