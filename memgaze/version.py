"""``--version`` for every console script: prints ``<program> <memgaze version>`` and exits."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from memgaze import __version__


def _print_version(value: bool) -> None:
    if value:
        print(f"{Path(sys.argv[0]).name} {__version__}")
        raise typer.Exit()


def version_option() -> Any:
    """A typer ``--version`` option (eager: it answers before the other options are checked)."""
    return typer.Option(False, "--version", callback=_print_version, is_eager=True, help="Print the version and exit.")
