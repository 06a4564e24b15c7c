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
VERSION = 4
# Why each version exists: the model card's "This version" section.
CHANGES = {
    3: "The recipe's 32 crops per training photo and 4 epochs (memgaze/builtin/recipe.json).",
    4: ("v3's weights (seed 0, unchanged: the same student.safetensors), exported again because the export changed: the "
        "graph casts the uint8 image to float before any layout op (TensorRT's ONNX parser takes UINT8 only at the "
        "graph's edge, so no v3 file could be built into a plan), the TensorRT Q/DQ file keeps its biases in float "
        "(TensorRT dequantizes INT8 only), every file meant for TensorRT passes a check of the parser's documented "
        "rules, the bundle carries 32 held-out gate samples (v3: 8), and the accuracy gate judges the maps too. Seeds 1 "
        "and 2 were not exported again: their rows in the figures are v3's."),
}
LICENCE = "NON-COMMERCIAL (derived from ResMem, University of Chicago)"
MAP = "what drives the score (learned from ResMem's Grad-CAM), not gaze"  # what its generic heatmap is
MANIFEST_SHA256 = "2ac92422ed7334fa5e9c6c217b26eec84cf35ad421adb8c8bbfc1d0db120e3bc"  # written by `make builtin` (tools/builtin.py)


def folder() -> Path:
    """The built-in model's folder inside the installed package."""
    return Path(__file__).parent / f"{NAME}-v{VERSION}"


def recipe_path() -> Path:
    """The recipe that made it, whole: ``photos`` (packages, crops per photo, the split by file and the packages held
    out whole), ``seeds``, and ``train`` (what ``memgaze-train --config`` reads); ``make builtin`` uses nothing else."""
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
