"""The memorability + gaze torch Dataset over a LaMem-layout root.

Splits are read by :func:`memgaze.layout.read_split` (torch-free, shared with export and the
benchmarks), gaze as described in :mod:`memgaze.train.data.gaze`. Every bad line or file is skipped
with one warning line; problems are found when the split is indexed, never mid-epoch.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset
from torchvision.transforms.v2 import functional as TF

from memgaze.console import WarningCounter
from memgaze.errors import fail
from memgaze.layout import gaze_dir, load_rgb, read_split
from memgaze.train.data.augment import JointAugment
from memgaze.train.data.cache import ImageCache
from memgaze.train.data.gaze import FIXATIONS_NAME, GazeStore, fixation_users, map_hw
from memgaze.train.models import map_size as model_map_size
from memgaze.train.normalization import IMAGENET_MEAN, IMAGENET_STD

MODES = ("image", "user")


def list_users(root: str | os.PathLike[str]) -> list[str]:
    """Sorted user names: folders under ``ROOT/gaze`` and ``user`` values of fixations.csv."""
    folder = gaze_dir(Path(root))
    if not folder.is_dir():
        return []
    users = {p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")}
    if (folder / FIXATIONS_NAME).is_file():
        users |= fixation_users(folder / FIXATIONS_NAME)
    return sorted(users)


def resize_map(heat: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A non-negative map of any size resized bilinearly (cell centres aligned) to ``size`` and scaled to sum to 1."""
    resized = F.interpolate(torch.from_numpy(np.ascontiguousarray(heat, np.float32))[None, None], size=size,
                            mode="bilinear", align_corners=False)[0, 0].clamp_min(0)
    return (resized / resized.sum().clamp_min(1e-12)).numpy()


def normalize_image(image: torch.Tensor) -> torch.Tensor:
    """uint8 RGB ``[3, H, W]`` → float32 normalized with ImageNet mean/std."""
    return TF.normalize(TF.to_dtype(image, torch.float32, scale=True), list(IMAGENET_MEAN), list(IMAGENET_STD))


class MemorabilityDataset(Dataset[dict[str, torch.Tensor]]):
    """Images of a split with scores and gaze maps (see docs/internals.md, "Data").

    ``mode="image"``: one item per image, ``user`` 0, heatmap = its map in ``generic_maps`` (by split-line
    name: a reference model's map, e.g. ResMem's Grad-CAM, resized bilinearly) when given, else the mean of
    the maps of the users in ``users`` that have gaze for it. ``mode="user"``: additionally one item per (image, user
    in ``users`` with gaze), ``user`` = 1 + that user's position in ``users``. ``index`` is the
    image's position in ``self.images``. All gaze maps are read when the dataset is built
    (unreadable ones are warned about then) and kept in memory; ``cache`` is a folder for the
    preprocessed-image cache (then no image is decoded in ``__getitem__``). ``sigma`` is the
    fixation Gaussian's sigma in map pixels (default: see :mod:`memgaze.train.data.gaze`). ``augment``
    transforms each item's image and map together (training splits; none = as stored). ``groups`` (image name →
    group, e.g. its kind of scene) gives each item a ``group`` id (−1 for an image it does not name), kept in
    ``item_groups`` for batches composed by group (:mod:`memgaze.train.data.kind_batches`).
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str,
        *,
        fold: int = 1,
        image_size: int = 224,
        map_size: int | tuple[int, int] | None = None,
        users: Sequence[str] | None = None,
        mode: str = "image",
        augment: JointAugment | None = None,
        cache: str | os.PathLike[str] | None = None,
        sigma: float | None = None,
        warnings: WarningCounter | None = None,
        generic_maps: Mapping[str, np.ndarray] | None = None,
        groups: Mapping[str, str] | None = None,
    ) -> None:
        if mode not in MODES:
            fail(f"unknown dataset mode {mode!r}; expected one of {', '.join(MODES)}")
        self.root = Path(root)
        if not self.root.is_dir():
            fail(f"dataset folder {self.root} does not exist")
        own = warnings is None
        self.warnings = warnings if warnings is not None else WarningCounter(f"{split} data")
        self.split, self.mode, self.image_size = split, mode, int(image_size)
        self.map_size = map_hw(map_size if map_size is not None else model_map_size(self.image_size))
        self.users = list(users) if users is not None else list_users(self.root)
        images = read_split(self.root, split, fold, self.warnings)
        self.cache: ImageCache | None = None
        self._cache_rows = np.arange(len(images))
        if cache is not None:
            self.cache = ImageCache.load_or_build(
                cache, f"{split}_{fold}_{self.image_size}", [im.path for im in images], self.image_size, self.warnings
            )
            self._cache_rows = np.flatnonzero(self.cache.valid)
            images = [images[row] for row in self._cache_rows]
        if not images:
            fail(f"split {split} of {self.root} has no usable images")
        self.images = images
        self.scores = np.array([im.score for im in images], dtype=np.float32)
        self.gaze = GazeStore(self.root, self.map_size, sigma, self.warnings)
        self.maps, self.items = self._index_gaze(generic_maps or {})
        self.item_groups = self._index_groups(groups) if groups is not None else None
        self.augment = augment
        if own:
            self.warnings.summary()

    def _index_gaze(self, generic_maps: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Read every usable map once: ``maps`` float32 [m, h, w] and ``items`` int64 [n, 3] of
        (image index, user index, map row or -1)."""
        maps: list[np.ndarray] = []
        items: list[tuple[int, int, int]] = []
        position = {user: 1 + i for i, user in enumerate(self.users)}
        for idx, image in enumerate(self.images):
            own_maps: list[tuple[int, np.ndarray]] = []
            for user in self.gaze.users_for(image.name):
                if user in position and (heat := self.gaze.heatmap(user, image.name)) is not None:
                    own_maps.append((position[user], heat))
            generic_row = -1
            generic = generic_maps.get(image.name)
            if generic is not None and generic.sum() > 0:
                maps.append(resize_map(generic, self.map_size))
                generic_row = len(maps) - 1
            elif own_maps:
                maps.append(np.stack([heat for _, heat in own_maps]).mean(axis=0, dtype=np.float32))
                generic_row = len(maps) - 1
            items.append((idx, 0, generic_row))
            if self.mode == "user":
                for user_index, heat in own_maps:
                    maps.append(heat)
                    items.append((idx, user_index, len(maps) - 1))
        shape = (len(maps), *self.map_size)
        return (np.stack(maps) if maps else np.zeros(shape, np.float32)), np.array(items, dtype=np.int64)

    def _index_groups(self, groups: Mapping[str, str]) -> np.ndarray:
        """The group id of each item: the position of its image's group among the sorted group names, or −1."""
        ids = {name: index for index, name in enumerate(sorted(set(groups.values())))}
        by_image = np.array([ids.get(groups.get(image.name, ""), -1) for image in self.images], np.int64)
        return by_image[self.items[:, 0]]

    def __len__(self) -> int:
        return len(self.items)

    def rgb(self, index: int) -> np.ndarray:
        """uint8 RGB ``[S, S, 3]`` of image ``index`` (from the cache when there is one)."""
        if self.cache is not None:
            return self.cache[int(self._cache_rows[index])]
        rgb = load_rgb(self.images[index].path, self.image_size)
        if rgb is None:  # passed the structural check when indexed, but OpenCV cannot decode it
            fail(f"image {self.images[index].path} cannot be decoded (use the image cache to skip such files)")
        return rgb

    def __getitem__(self, i: int) -> dict[str, Any]:
        idx, user, row = (int(v) for v in self.items[i])
        image = torch.from_numpy(self.rgb(idx)).permute(2, 0, 1).contiguous()
        has_map = row >= 0
        heat = torch.from_numpy(self.maps[row].copy() if has_map else np.zeros(self.map_size, np.float32))[None]
        if self.augment is not None:
            image, heat = self.augment(image, heat)
            total = float(heat.sum())
            heat = heat / total if has_map and total > 0 and math.isfinite(total) else torch.zeros_like(heat)
        item = {
            "image": normalize_image(image),
            "score": torch.tensor(self.scores[idx], dtype=torch.float32),
            "user": torch.tensor(user, dtype=torch.int64),
            "heatmap": heat,
            "has_heatmap": torch.tensor(has_map and bool(heat.sum() > 0)),
            "index": torch.tensor(idx, dtype=torch.int64),
        }
        if self.item_groups is not None:
            item["group"] = torch.tensor(self.item_groups[i], dtype=torch.int64)
        return item
