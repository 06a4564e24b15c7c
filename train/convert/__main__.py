"""``python -m memgaze.train.convert KIND SRC DST``: a memorability dataset as its publisher ships it,
written in the LaMem layout (one subcommand per dataset, each with its own options); and
``python -m memgaze.train.convert TRACKER EXPORT... --stimuli DIR --out DST``: an eye tracker's export as
``DST/gaze/fixations.csv`` (:mod:`.gaze_cli`)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import typer

from memgaze.console import WarningCounter
from memgaze.errors import run_cli
from memgaze.train.convert.gaze_cli import add_commands
from memgaze.train.convert.writer import Converted, write_dataset
from memgaze.version import version_option

app = typer.Typer(
    add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
    help="Convert a memorability dataset into the LaMem layout (DST/images/, DST/splits/{train,val,test}_<k>.txt) "
    "for memgaze-train and memgaze-bench lamem (LaMem itself needs no conversion), or an eye tracker's export "
    "into DST/gaze/fixations.csv (eyelink, tobii, pupil-core, pupil-cloud, gazepoint).",
)

SRC = typer.Argument(..., help="The release folder, as downloaded and unpacked.")
DST = typer.Argument(..., help="The folder to write (new, or an earlier conversion to replace).")
FOLDS = typer.Option(5, "--splits", help="How many random train/val/test splits to draw (the release has none).")
SEED = typer.Option(0, "--seed", help="Seed of the drawn splits.")


@app.callback()
def _version(version: bool = version_option()) -> None:
    """Convert memorability datasets (``--version`` answers before any command)."""


def _convert(what: str, dst: Path, read: Callable[[WarningCounter], Converted]) -> None:
    """Read the release (one warning per unusable row, then their count) and write it to ``dst``."""
    warnings = WarningCounter(what)
    converted = read(warnings)
    warnings.summary()
    write_dataset(dst, converted)


@app.command()
def sun(
    src: Path = SRC, dst: Path = DST,
    scores: str = typer.Option("halves", "--scores", help="halves: train/val on one half of the participants' hit rates, test on the other's (Isola et al.); all: every participant's."),
    seed: int = typer.Option(0, "--seed", help="Seed of the validation images drawn from each split's training images."),
) -> None:
    """SUN memorability (Isola et al., CVPR 2011): its 25 splits, from the .mat files of its Data/ folder."""
    from memgaze.train.convert.sun import convert_sun

    _convert("SUN memorability", dst, lambda warnings: convert_sun(src, scores, seed, warnings))


@app.command()
def memcat(
    src: Path = SRC, dst: Path = DST,
    score_column: str = typer.Option("memorability_w_fa_correction", "--score-column", help="The CSV column holding the score."),
    folds: int = FOLDS, seed: int = SEED,
) -> None:
    """MemCat (Goetschalckx & Wagemans, PeerJ 2019): memcat_image_data.csv and its category folders."""
    from memgaze.train.convert.memcat import convert_memcat

    _convert("MemCat", dst, lambda warnings: convert_memcat(src, score_column, folds, seed, warnings))


@app.command()
def figrim(
    src: Path = SRC, dst: Path = DST,
    experiment: str = typer.Option("amt2", "--experiment", help="amt2: scores across scene categories; amt1: within each category."),
    folds: int = FOLDS, seed: int = SEED,
) -> None:
    """FIGRIM (Bylinskii et al., Vision Research 2015): image_data_targets.mat and the target images."""
    from memgaze.train.convert.figrim import convert_figrim

    _convert("FIGRIM", dst, lambda warnings: convert_figrim(src, experiment, folds, seed, warnings))


add_commands(app)


def main() -> None:
    """Entry point of ``python -m memgaze.train.convert``."""
    run_cli(app)


if __name__ == "__main__":
    main()
