"""MemCat (Goetschalckx & Wagemans: MemCat: a new category-based image set quantified on memorability,
PeerJ 2019) into the LaMem layout.

The release as its users read it: ``MemCat_data/memcat_image_data.csv`` (also accepted at ``data/`` or at
the top) with the columns ``image_file``, ``category``, ``subcategory`` and the scores
``memorability_w_fa_correction`` (hit rate corrected for false alarms, the default) and
``memorability_wo_fa_correction``; the images in ``MemCat_images/MemCat/<category>/<subcategory>/``
(also accepted: ``images/`` or ``MemCat/`` instead of ``MemCat_images/MemCat/``). MemCat publishes no
splits: ``folds`` random 70/10/20 ones are drawn (seeded). Image names keep the category folders.
"""

from __future__ import annotations

import csv
from pathlib import Path

from memgaze.console import WarningCounter
from memgaze.errors import fail
from memgaze.train.convert.writer import Converted, random_folds, unit_scores

CSV_PLACES = ("MemCat_data", "data", ".")
IMAGE_PLACES = ("MemCat_images/MemCat", "images", "MemCat")
DEFAULT_SCORE = "memorability_w_fa_correction"


def convert_memcat(src: Path, score_column: str, folds: int, seed: int, warnings: WarningCounter) -> Converted:
    """Read the MemCat release under ``src``."""
    table = _find(src, [Path(p) / "memcat_image_data.csv" for p in CSV_PLACES], "memcat_image_data.csv")
    images_root = _find(src, [Path(p) for p in IMAGE_PLACES], "the image folder")
    with open(table, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        needed = ("image_file", "category", "subcategory", score_column)
        missing = [c for c in needed if c not in (reader.fieldnames or [])]
        if missing:
            fail(f"{table} has no column {', '.join(missing)} (columns: {', '.join(reader.fieldnames or [])})")
        rows = list(reader)
    images, raw = {}, {}
    for line, row in enumerate(rows, start=2):
        name = f"{row['category']}/{row['subcategory']}/{row['image_file']}"
        path = images_root / name
        if not path.is_file():
            warnings.warn("missing image", f"{table}:{line}: {path} not found; left out")
            continue
        try:
            raw[name] = float(row[score_column])
        except ValueError:
            warnings.warn("bad score", f"{table}:{line}: {score_column} {row[score_column]!r} is not a number; left out")
            continue
        images[name] = path
    scores = unit_scores(raw, "MemCat", warnings)
    readme = (f"MemCat (Goetschalckx & Wagemans, PeerJ 2019) from {src}.\nScores: the column {score_column}.\n"
              f"Splits: {folds} random 70/10/20 train/val/test splits drawn here (seed {seed}); MemCat publishes none.")
    return Converted(images, random_folds(scores, folds, seed), readme)


def _find(src: Path, places: list[Path], what: str) -> Path:
    for place in places:
        if (src / place).exists():
            return src / place
    fail(f"{src}: {what} not found (looked for {', '.join(str(p) for p in places)})")
