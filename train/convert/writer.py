"""Writing a converted dataset in the LaMem layout, atomically: images linked (or copied) from the
release or encoded from pixel arrays, one ``train/val/test`` triple of split files per split, and a
README saying where it all came from."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Mapping, Union

import cv2
import numpy as np

from memgaze.atomic import atomic_dir, link_or_copy
from memgaze.console import WarningCounter, console
from memgaze.errors import fail
from memgaze.layout import SPLITS, split_text

README_MARK = "converted by memgaze.train.convert"
TRAIN_VAL_TEST = (0.7, 0.1, 0.2)  # the split of a release that publishes none

Image = Union[Path, np.ndarray]  # a file of the release, or RGB uint8 pixels to encode as PNG
Fold = dict[str, list[tuple[str, float]]]  # split -> [(image name, score)]


@dataclasses.dataclass(frozen=True)
class Converted:
    """What a converter read: the images by name, the splits, and what the README should say."""

    images: Mapping[str, Image]
    folds: list[Fold]
    readme: str


def random_folds(scores: dict[str, float], folds: int, seed: int) -> list[Fold]:
    """``folds`` independent random 70/10/20 train/val/test splits of the images (seeded per split)."""
    if folds < 1:
        fail(f"--splits must be at least 1, got {folds}")
    names = sorted(scores)
    n_train, n_val = round(TRAIN_VAL_TEST[0] * len(names)), round(TRAIN_VAL_TEST[1] * len(names))
    out = []
    for fold in range(1, folds + 1):
        order = [names[i] for i in np.random.default_rng([seed, fold]).permutation(len(names))]
        parts = {"train": order[:n_train], "val": order[n_train : n_train + n_val], "test": order[n_train + n_val :]}
        out.append({split: [(name, scores[name]) for name in sorted(part)] for split, part in parts.items()})
    return out


def unit_scores(raw: dict[str, float], what: str, warnings: WarningCounter) -> dict[str, float]:
    """Scores kept in [0, 1]: NaN ones dropped and values outside clipped, one warning each."""
    kept = {}
    for name, score in raw.items():
        if not np.isfinite(score):
            warnings.warn("no score", f"{what}: {name} has no score; left out")
            continue
        if not 0.0 <= score <= 1.0:
            warnings.warn("score clipped", f"{what}: score {score:.4f} of {name} clipped to [0, 1]")
        kept[name] = float(np.clip(score, 0.0, 1.0))
    return kept


def write_dataset(dst: Path, converted: Converted) -> None:
    """Write ``converted`` to ``dst`` as a whole (an earlier conversion there is replaced; any other
    non-empty folder is refused)."""
    if dst.exists() and (not dst.is_dir() or (any(dst.iterdir()) and README_MARK not in _readme_text(dst))):
        fail(f"{dst} exists and is not an earlier conversion; refusing to overwrite it (give a new folder)")
    used = sorted({name for fold in converted.folds for rows in fold.values() for name, _ in rows})
    if not used:
        fail("nothing to write: no image has both a file and a score")
    with atomic_dir(dst) as tmp:
        for name in used:
            _put_image(converted.images[name], tmp / "images" / name)
        (tmp / "splits").mkdir()
        for k, fold in enumerate(converted.folds, start=1):
            for split in SPLITS:
                (tmp / "splits" / f"{split}_{k}.txt").write_text(split_text(fold[split]))
        (tmp / "README.txt").write_text(f"{README_MARK}\n\n{converted.readme}\n")
    first = converted.folds[0]
    console.print(f"wrote {dst}: {len(used)} images, {len(converted.folds)} splits of "
                  + "/".join(f"{split} {len(first[split])}" for split in SPLITS))


def _put_image(image: Image, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(image, np.ndarray):
        ok, data = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        if not ok:
            fail(f"could not encode {target.name}")
        target.write_bytes(data.tobytes())
        return
    link_or_copy(image, target)


def _readme_text(root: Path) -> str:
    try:
        return (root / "README.txt").read_text()
    except (OSError, UnicodeDecodeError):
        return ""
