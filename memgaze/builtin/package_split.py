"""The leave-packages-out split of the built-in model's photos, and the groups of similar photos beside each folder.

A split by file lets each package's look (its photographer, camera, subjects) into training. To measure how the
model does on photos of a source it never saw, whole packages are held out: ``DIR/packages-out/train/`` holds the
training files of every other package (hard links to ``DIR/train/``; the frames of a video stay with their
package), and ``DIR/packages-out/heldout/images/`` every photo of the held-out packages, whole, from both sides
of the file split. A model trained on the first and measured on the second (``memgaze-bench agreement``) gives
the leave-packages-out figures; the models trained on ``DIR/train/`` never see them as a measure.

Each photo folder gets a ``groups.json`` (:mod:`memgaze.builtin.scene_kinds`: by package and by scene kind), which
``memgaze-bench agreement`` reads to measure agreement inside each group, and training can read to compose
batches of photos of one kind.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from memgaze.atomic import link_or_copy, write_json
from memgaze.media import IMAGE_SUFFIXES
from memgaze.builtin.scene_kinds import package_of, photo_groups

PACKAGES_OUT = "packages-out"
GROUPS_FILE = "groups.json"


def write_groups(out: Path) -> None:
    """``groups.json`` beside the photos of ``out/train`` (crops) and of ``out/heldout`` (for ``heldout/images``)."""
    for folder, photos in ((out / "train", out / "train"), (out / "heldout", out / "heldout" / "images"),
                           (out / PACKAGES_OUT / "train", out / PACKAGES_OUT / "train"),
                           (out / PACKAGES_OUT / "heldout", out / PACKAGES_OUT / "heldout" / "images")):
        if photos.is_dir():
            names = sorted(p.name for p in photos.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            write_json(folder / GROUPS_FILE, photo_groups(names))


def write_package_split(out: Path, packages: tuple[str, ...]) -> None:
    """Fill ``out/packages-out/`` from ``out/train`` and ``out/heldout/images`` (see the module's docstring): the
    training files of the packages not in ``packages``, the held-out photos of those in it (the training-side
    photos of those packages were written there whole by the fetcher). Nothing when ``packages`` is empty."""
    folder = out / PACKAGES_OUT
    if not packages:
        shutil.rmtree(folder, ignore_errors=True)
        return
    shutil.rmtree(folder / "train", ignore_errors=True)
    (folder / "train").mkdir(parents=True)
    (folder / "heldout" / "images").mkdir(parents=True, exist_ok=True)
    for path in _files(out / "train"):
        if path.name != GROUPS_FILE and package_of(path.name) not in packages:
            _link(path, folder / "train" / path.name)
    for path in _files(out / "heldout" / "images"):
        if package_of(path.name) in packages:
            _link(path, folder / "heldout" / "images" / path.name)


def _files(folder: Path) -> list[Path]:
    return sorted(folder.iterdir()) if folder.is_dir() else []


def _link(source: Path, target: Path) -> None:
    target.unlink(missing_ok=True)
    link_or_copy(source, target)
