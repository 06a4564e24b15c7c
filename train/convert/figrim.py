"""FIGRIM (Bylinskii, Isola, Bainbridge, Torralba, Oliva: Intrinsic and extrinsic effects on image
memorability, Vision Research 2015) into the LaMem layout.

The scores are public (figrim.mit.edu), in the form the authors' own analysis code reads them
(github.com/cvzoya/memorability-distinctiveness): ``image_data_targets.mat`` holds the struct array
``image_data_targets`` with ``filename``, ``category`` and, per experiment, ``amt1`` (images shown within
their scene category) and ``amt2`` (across categories), each with ``hits``, ``misses``,
``false_alarms`` and ``correct_rejections``. The score is the hit rate, hits / (hits + misses), as the
authors' ``calculateScores.m`` computes it; ``amt2`` by default (LaMem's and SUN's games mix categories too).
The target images are found by file name anywhere under the source folder (FIGRIM ships them in scene-
category folders). FIGRIM publishes no splits: ``folds`` random 70/10/20 ones are drawn (seeded).
"""

from __future__ import annotations

from pathlib import Path

from memgaze.console import WarningCounter
from memgaze.errors import fail
from memgaze.layout import IMAGE_EXTENSIONS
from memgaze.train.convert.matfile import field, hit_rate, load_variable, records
from memgaze.train.convert.writer import Converted, random_folds, unit_scores

EXPERIMENTS = ("amt1", "amt2")
SCORES_FILE = "image_data_targets.mat"


def convert_figrim(src: Path, experiment: str, folds: int, seed: int, warnings: WarningCounter) -> Converted:
    """Read FIGRIM's scores file and target images under ``src``."""
    if experiment not in EXPERIMENTS:
        fail(f"--experiment must be one of {', '.join(EXPERIMENTS)}, got {experiment!r}")
    found = sorted(src.rglob(SCORES_FILE)) if src.is_dir() else []
    if not found:
        fail(f"{src}: no {SCORES_FILE} (FIGRIM's scores file) under it")
    table = found[0]
    files: dict[str, list[Path]] = {}
    for path in src.rglob("*"):
        if path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file():
            files.setdefault(path.name, []).append(path)
    images, raw = {}, {}
    for record in records(load_variable(table, "image_data_targets")):
        filename, category = str(field(record, "filename", str(table))), str(field(record, "category", str(table)))
        candidates = files.get(Path(filename).name, [])
        found_at = next((p for p in candidates if p.parent.name == category), candidates[0] if candidates else None)
        if found_at is None:
            warnings.warn("missing image", f"{table}: image {filename} ({category}) not found under {src}; left out")
            continue
        name = f"{category}/{Path(filename).name}"
        images[name] = found_at
        raw[name] = hit_rate(field(record, experiment, str(table)), str(table))
    scores = unit_scores(raw, "FIGRIM", warnings)
    readme = (f"FIGRIM (Bylinskii et al., Vision Research 2015) from {src}.\n"
              f"Scores: hit rates of experiment {experiment} in {table.name}.\n"
              f"Splits: {folds} random 70/10/20 train/val/test splits drawn here (seed {seed}); FIGRIM publishes none.")
    return Converted(images, random_folds(scores, folds, seed), readme)
