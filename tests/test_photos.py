"""The real-photo fetcher: sources split by file, crops of the training side, provenance recorded."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from memgaze.errors import MemgazeError
from memgaze.train.photos import CROP_SIDE, SOURCES, Source, build, held_out, random_crops

MATPLOTLIB = next(s for s in SOURCES if s.client == "installed")


def test_random_crops_cover_scales_and_keep_the_whole_photo() -> None:
    image = np.random.default_rng(0).integers(0, 256, (300, 500, 3), dtype=np.uint8)
    crops = random_crops(image, 6, np.random.default_rng(1))
    assert len(crops) == 6 and all(min(c.shape[:2]) == CROP_SIDE for c in crops)
    assert crops[0].shape[:2] == (CROP_SIDE, round(500 * CROP_SIDE / 300))  # the whole photo first
    assert len({c.shape for c in crops[1:]}) > 1  # random aspect and scale


def test_split_is_by_source_file_and_deterministic() -> None:
    members = [f"usr/share/x/{i}.jpg" for i in range(400)]
    sides = [held_out("pkg", m) for m in members]
    assert sides == [held_out("pkg", m) for m in members]
    assert 0.25 < sum(sides) / len(sides) < 0.45


@pytest.mark.parametrize("side_of_grace_hopper", ["train", "heldout"])
def test_build_from_an_installed_package(tmp_path: Path, side_of_grace_hopper: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("memgaze.train.photos.held_out", lambda package, member: side_of_grace_hopper == "heldout")
    counts = build(tmp_path / "photos", crops=3, sources=(MATPLOTLIB,))
    record = json.loads((tmp_path / "photos" / "sources.json").read_text())["files"]
    assert record == [{"package": "matplotlib", "client": "installed", "member": "mpl-data/sample_data/grace_hopper.jpg",
                       "licence": MATPLOTLIB.licence, "side": side_of_grace_hopper}]
    if side_of_grace_hopper == "train":
        assert counts["train_crops"] == 3 and not (tmp_path / "photos" / "heldout").exists()
        assert cv2.imread(str(tmp_path / "photos" / "train" / "matplotlib__grace_hopper_c2.jpg")) is not None
    else:
        assert counts["heldout_photos"] == 1 and not (tmp_path / "photos" / "train").exists()


def test_a_package_without_the_listed_files_is_a_clear_error(tmp_path: Path) -> None:
    missing = Source("matplotlib", "installed", ("mpl-data/no_such_photo.jpg",), "n/a")
    with pytest.raises(MemgazeError, match="holds none of the expected files"):
        build(tmp_path / "photos", crops=2, sources=(missing,))
