"""Peers of ``memgaze-bench lamem``: any model memgaze runs as an external teacher (``resmem``, or an
ONNX memorability model) scored against the ground truth on exactly the images of each split's test list.

The model scores the union of the test lists once (``unlabelled_frames.teacher_outputs``, cached in the
user cache and keyed by the model and the images' contents); each split then takes its own
images from it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from memgaze.console import WarningCounter
from memgaze.layout import ScoredImage

RESMEM_CAVEAT = (
    "trained by its authors on LaMem and MemCat together (their README: 'trained and validated on a dataset "
    "that was constructed from both MemCat and LaMem'): it has most likely seen these test images, so its "
    "LaMem figure is not a clean test"
)
ONNX_CAVEAT = "training data unknown here: a model trained on LaMem may have seen these test images"


def score_peer(
    spec: str, root: Path, tests: dict[int, list[ScoredImage]], cache: Path, warnings: WarningCounter
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(the peer's description, one row per split with Spearman ρ, Pearson r and MSE vs the ground truth)."""
    from memgaze import metrics
    from memgaze.train.label_free.external_teacher import ADAPTERS, open_teacher
    from memgaze.train.label_free.unlabelled_frames import teacher_outputs

    teacher = open_teacher(spec)
    images = root / "images"
    names = sorted({item.path.relative_to(images).as_posix() for items in tests.values() for item in items})
    view = cache / re.sub(r"[^A-Za-z0-9._-]+", "_", teacher.identity)[:80]
    _link_images(view, images)
    output, cached = teacher_outputs(teacher, view, names, warnings)
    lookup = dict(zip(names, output.scores))
    label = f"{teacher.name} ({teacher.version})"
    rows = []
    for fold, items in tests.items():
        pred = np.array([lookup[item.path.relative_to(images).as_posix()] for item in items])
        truth = np.array([item.score for item in items])
        usable = np.isfinite(pred)
        rows.append({"model": label, "kind": "peer", "fold": fold, "images": int(usable.sum()),
                     **metrics.score_metrics(pred[usable], truth[usable])})
    caveat = RESMEM_CAVEAT if spec.lower() in ADAPTERS else ONNX_CAVEAT
    return {"model": label, "spec": spec, "describe": teacher.describe(), "cached": cached, "caveat": caveat}, rows


def _link_images(view: Path, images: Path) -> None:
    """``view/images`` → the dataset's ``images/`` (the score cache lives in ``view``, never in the dataset)."""
    view.mkdir(parents=True, exist_ok=True)
    link = view / "images"
    target = images.resolve()
    if link.is_symlink() and Path(os.readlink(link)) == target:
        return
    if link.is_symlink():
        link.unlink()
    link.symlink_to(target, target_is_directory=True)
