"""The built-in model: a real-photo student that installs with memgaze, used wherever no model is given.

``memgaze.load()``, ``memgaze-run``, ``memgaze-bench`` and ``memgaze-engine`` without a bundle take
:func:`bundle_path`. Its folder also holds the student checkpoint it was exported from (to add a viewer
with ``memgaze-train --stage personalize`` and export your own bundle) and a few held-out photos at the
model's size with their scores, which the tests compare with the model card. It is rebuilt by
``make builtin`` and changes only when its recipe does; :data:`MANIFEST_SHA256` pins it.
"""

from __future__ import annotations

from pathlib import Path

from memgaze.console import console
from memgaze.errors import fail
from memgaze.manifest import sha256_file
from memgaze.user_cache import user_cache_dir

NAME = "memgaze-lite0-resmem"
VERSION = 3
LICENCE = "NON-COMMERCIAL (derived from ResMem, University of Chicago)"
MAP = "what drives the score (learned from ResMem's Grad-CAM), not gaze"  # what its generic heatmap is
MANIFEST_SHA256 = "39e68f197a5e5344d731e6d2e3c3c70e22f3dcd602bfc1174ee9a12f76dde6c6"  # written by `make builtin` (tools/builtin.py)


def folder() -> Path:
    """The built-in model's folder inside the installed package."""
    return Path(__file__).parent / f"{NAME}-v{VERSION}"


def recipe_path() -> Path:
    """The training config that made it (``memgaze-train --config``; ``make builtin`` uses it)."""
    return Path(__file__).parent / "recipe.json"


def bundle_path() -> Path:
    """Its deploy bundle (``manifest.json``, FP32 and both INT8 ONNX files, gate samples, ``MODEL.md``)."""
    return folder() / "deploy"


def checkpoint_path() -> Path:
    """The student checkpoint the bundle was exported from (``.safetensors`` + ``.json``), inside the bundle and
    listed in its manifest, so that its checksum is checked like the ONNX files'."""
    return bundle_path() / "student.safetensors"


def samples_path() -> Path:
    """Held-out photos at the model's input size and ``scores.json``, their scores as the model card gives them."""
    return folder() / "samples"


def describe() -> str:
    return f"{NAME} v{VERSION}, licence {LICENCE}"


def resolve(bundle: str | Path | None) -> Path:
    """``bundle``, or the built-in model's bundle when it is None (saying so, the first time, in one line)."""
    if bundle is not None:
        return Path(bundle)
    path = bundle_path()
    if not (path / "manifest.json").is_file():
        fail(f"the built-in model is not installed ({path} is missing): reinstall memgaze, or give a bundle with --model")
    if MANIFEST_SHA256 and sha256_file(path / "manifest.json") != MANIFEST_SHA256:
        fail(f"the built-in model at {path} has been modified (its manifest's sha256 differs); reinstall memgaze")
    _announce_once()
    return path


def _announce_once() -> None:
    """One line naming the built-in model and its licence, printed once per user (each time if the cache is read-only)."""
    marker = user_cache_dir(f"builtin-{NAME}-v{VERSION}.seen")
    if marker.is_file():
        return
    console.print(f"using the built-in model {describe()}; model card: {bundle_path() / 'MODEL.md'}", soft_wrap=True)
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
    except OSError:
        pass
