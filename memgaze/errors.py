"""One-line user-facing errors and the CLI wrapper that prints them."""

from __future__ import annotations

import sys
from typing import Callable, NoReturn


class MemgazeError(Exception):
    """A problem the user can fix (bad input, missing file); printed as one line, exit code 2."""


def fail(message: str) -> NoReturn:
    """Raise a :class:`MemgazeError` with ``message``."""
    raise MemgazeError(message)


def run_cli(entry: Callable[[], object]) -> None:
    """Run a CLI entry point; turn MemgazeError and Ctrl-C into one line and a non-zero exit."""
    try:
        entry()
    except MemgazeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
