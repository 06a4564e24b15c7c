"""SUN memorability (Isola, Xiao, Torralba, Oliva: What makes an image memorable? CVPR 2011) into the
LaMem layout.

The release's ``Data/`` folder, as its own MATLAB scripts read and write it:

- ``Image data/target_images.mat``: ``img``, uint8 RGB ``[H, W, 3, N]`` (2,222 scenes, then textures);
- ``Random splits/image_train_indices.mat`` / ``image_test_indices.mat``: ``image_train_indices`` /
  ``image_test_indices``, ``[25, n]`` 1-based image numbers, one row per split;
- ``Random splits/subject_hrs1.mat`` / ``subject_hrs2.mat``: ``subject_hrs1`` / ``subject_hrs2``,
  ``[25, N]`` hit rates measured on two disjoint halves of the participants, one row per split;
- ``Experiment data/sorted_target_data.mat``: ``sorted_target_data``, a cell of structs with ``hits`` and
  ``misses`` over all participants (read only for ``scores="all"``).

Isola et al.'s protocol (``scores="halves"``, the default) trains on the first half's hit rates and
tests against the second half's, split by split; ``"all"`` uses every participant's hit rate
everywhere. The release has no validation split: 10% of each split's training images (seeded) become
``val_k``. Images are written as ``target_<number>.png``, the number being the release's 1-based index.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from memgaze.console import WarningCounter
from memgaze.errors import fail
from memgaze.train.convert.matfile import hit_rate, load_variable, records
from memgaze.train.convert.writer import Converted, Fold, unit_scores

VAL_SHARE = 0.1
SCORES = ("halves", "all")


def convert_sun(src: Path, scores: str, seed: int, warnings: WarningCounter) -> Converted:
    """Read the SUN memorability release under ``src`` (the folder holding ``Data/``, or ``Data/`` itself)."""
    if scores not in SCORES:
        fail(f"--scores must be one of {', '.join(SCORES)}, got {scores!r}")
    data = src / "Data" if (src / "Data").is_dir() else src
    splits = data / "Random splits"
    pixels = np.asarray(load_variable(data / "Image data" / "target_images.mat", "img"))
    if pixels.ndim != 4 or pixels.shape[2] != 3:
        fail(f"{data / 'Image data' / 'target_images.mat'}: img is {pixels.shape}, expected [H, W, 3, N]")
    train_rows = _indices(splits / "image_train_indices.mat", "image_train_indices", pixels.shape[3])
    test_rows = _indices(splits / "image_test_indices.mat", "image_test_indices", pixels.shape[3])
    if len(train_rows) != len(test_rows):
        fail(f"{splits}: {len(train_rows)} training splits but {len(test_rows)} test splits")
    if scores == "halves":
        first = np.atleast_2d(load_variable(splits / "subject_hrs1.mat", "subject_hrs1")).astype(float)
        second = np.atleast_2d(load_variable(splits / "subject_hrs2.mat", "subject_hrs2")).astype(float)
    else:
        path = data / "Experiment data" / "sorted_target_data.mat"
        every = np.array([hit_rate(r, str(path)) for r in records(load_variable(path, "sorted_target_data"))])
        first = second = np.tile(every, (len(train_rows), 1))
    folds = []
    for k, (train, test) in enumerate(zip(train_rows, test_rows)):
        rng = np.random.default_rng([seed, k + 1])
        held = set(rng.choice(train, size=max(1, round(VAL_SHARE * len(train))), replace=False).tolist())
        fold: Fold = {
            "train": _rows([i for i in train if i not in held], first[k], warnings),
            "val": _rows(sorted(held), first[k], warnings),
            "test": _rows(test, second[k], warnings),
        }
        folds.append(fold)
    images = {_name(i): pixels[:, :, :, i - 1] for i in {i for row in train_rows + test_rows for i in row}}
    readme = (
        f"SUN memorability (Isola et al., CVPR 2011) from {src}.\n"
        f"Scores: {'hit rates of one half of the participants for train/val, of the other half for test (Isola et al.)' if scores == 'halves' else 'hit rates over all participants'}.\n"
        f"Splits: the release's {len(folds)} random splits; val_k = {VAL_SHARE:.0%} of each split's training images (seed {seed})."
    )
    return Converted(images, folds, readme)


def _indices(path: Path, name: str, count: int) -> list[list[int]]:
    rows = np.atleast_2d(load_variable(path, name)).astype(int)
    if rows.size == 0 or rows.min() < 1 or rows.max() > count:
        fail(f"{path}: {name} must hold 1-based image numbers in 1..{count}")
    return [sorted(set(row.tolist())) for row in rows]


def _name(index: int) -> str:
    return f"target_{index:04d}.png"


def _rows(indices: list[int], hit_rates: np.ndarray, warnings: WarningCounter) -> list[tuple[str, float]]:
    kept = unit_scores({_name(i): float(hit_rates[i - 1]) for i in indices}, "SUN memorability", warnings)
    return sorted(kept.items())
