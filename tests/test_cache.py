"""Preprocessed-image cache: equal to uncached items, reused, rebuilt on change, atomic."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from memgaze.console import WarningCounter
from memgaze.errors import MemgazeError
from memgaze.train.data.cache import ImageCache
from memgaze.train.data.dataset import MemorabilityDataset


def _dataset(root: Path, cache: Path | None, size: int = 32, split: str = "val") -> MemorabilityDataset:
    return MemorabilityDataset(root, split, image_size=size, mode="user", cache=cache, warnings=WarningCounter("t"))


def test_cached_items_equal_uncached(demo_data: Path, tmp_path: Path) -> None:
    cached, plain = _dataset(demo_data, tmp_path / "cache"), _dataset(demo_data, None)
    assert cached.cache is not None and len(cached) == len(plain) == 50
    for i in range(len(plain)):
        a, b = cached[i], plain[i]
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["val_1_32.json", "val_1_32.npy"]  # no temp files
    array = np.load(tmp_path / "cache" / "val_1_32.npy", mmap_mode="r")
    assert array.shape == (10, 32, 32, 3) and array.dtype == np.uint8


def test_reused_then_rebuilt_when_the_hash_differs(demo_copy: Path, tmp_path: Path) -> None:
    folder = tmp_path / "cache"
    _dataset(demo_copy, folder)
    npy = folder / "val_1_32.npy"
    built = npy.stat().st_mtime_ns
    _dataset(demo_copy, folder)
    assert npy.stat().st_mtime_ns == built  # same images and size: reused
    _dataset(demo_copy, folder, size=64)
    assert np.load(folder / "val_1_64.npy").shape == (10, 64, 64, 3)
    lines = (demo_copy / "splits" / "val_1.txt").read_text().splitlines()
    (demo_copy / "splits" / "val_1.txt").write_text("\n".join(lines[:-1]) + "\n")  # one image fewer
    ds = _dataset(demo_copy, folder)
    assert np.load(npy).shape == (9, 32, 32, 3) and len(ds.images) == 9
    assert npy.stat().st_mtime_ns != built


def test_undecodable_image_is_dropped_by_the_cache(demo_copy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Passes the cheap structural check (JPEG start and end markers) but cannot be decoded.
    (demo_copy / "images" / "bogus.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4 + b"\xff\xd9")
    with open(demo_copy / "splits" / "val_1.txt", "a") as handle:
        handle.write("bogus.jpg 0.5\n")
    warnings = WarningCounter("t")
    ds = MemorabilityDataset(demo_copy, "val", image_size=32, cache=tmp_path / "c", warnings=warnings)
    assert len(ds) == 10 and warnings.counts == {"corrupt image": 1}
    assert all(im.name != "bogus.jpg" for im in ds.images)
    again = WarningCounter("t")
    MemorabilityDataset(demo_copy, "val", image_size=32, cache=tmp_path / "c", warnings=again)
    assert again.counts == {"corrupt image": 1}  # reported again when the cache is reused
    plain = MemorabilityDataset(demo_copy, "val", image_size=32, warnings=WarningCounter("t"))
    with pytest.raises(MemgazeError, match="cannot be decoded"):
        plain[len(plain) - 1]  # without the cache: a one-line error, not a traceback
    capsys.readouterr()


def test_pickles_without_the_array(demo_data: Path, tmp_path: Path) -> None:
    ds = _dataset(demo_data, tmp_path / "cache")
    ds[0]
    assert isinstance(ds.cache, ImageCache) and ds.cache._array is not None
    clone = pickle.loads(pickle.dumps(ds))
    assert clone.cache is not None and clone.cache._array is None
    assert torch.equal(clone[5]["image"], ds[5]["image"])
    assert len(pickle.dumps(ds.cache)) < 10_000
