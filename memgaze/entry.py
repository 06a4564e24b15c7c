"""Console entry points that need OpenCV: a missing ``cv2`` is one line that says what to install, not a traceback."""

from __future__ import annotations

import importlib

from memgaze.cv2_build import require_cv2
from memgaze.errors import run_cli


def _launch(module: str) -> None:
    run_cli(require_cv2)  # exits 2 with one line when cv2 does not import
    importlib.import_module(module).main()


def memgaze_run() -> None:
    """``memgaze-run``."""
    _launch("memgaze.runtime.cli")


def memgaze_ray() -> None:
    """``memgaze-ray``."""
    _launch("memgaze.runtime.ray_cli")
