"""Converters into the LaMem layout, each run on small files written here in the layout its publisher
documents (SUN memorability's .mat files, MemCat's CSV and category folders, FIGRIM's struct array)."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import scipy.io

from memgaze.console import WarningCounter
from memgaze.errors import MemgazeError
from memgaze.layout import list_folds, read_split
from memgaze.train.convert.figrim import convert_figrim
from memgaze.train.convert.memcat import convert_memcat
from memgaze.train.convert.sun import convert_sun
from memgaze.train.convert.writer import write_dataset

SUN_IMAGES, SUN_SPLITS = 14, 3  # 12 scenes in the splits, then 2 "textures" no split uses


def _split(root: Path, split: str, fold: int) -> dict[str, float]:
    return {item.name: item.score for item in read_split(root, split, fold)}


def _convert(tmp_path: Path, converted) -> Path:  # type: ignore[no-untyped-def]
    dst = tmp_path / "converted"
    write_dataset(dst, converted)
    return dst


@pytest.fixture
def sun_release(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    """A miniature SUN memorability ``Data/`` folder; returns it and the arrays written."""
    rng = np.random.default_rng(0)
    data = tmp_path / "release" / "Data"
    for folder in ("Image data", "Random splits", "Experiment data"):
        (data / folder).mkdir(parents=True)
    arrays = {
        "img": rng.integers(0, 256, (16, 16, 3, SUN_IMAGES), dtype=np.uint8),
        "train": np.array([rng.permutation(12)[:6] + 1 for _ in range(SUN_SPLITS)], dtype=float),
        "hrs1": rng.uniform(0.3, 0.9, (SUN_SPLITS, SUN_IMAGES)),
        "hrs2": rng.uniform(0.3, 0.9, (SUN_SPLITS, SUN_IMAGES)),
        "hits": rng.integers(5, 40, SUN_IMAGES), "misses": rng.integers(1, 20, SUN_IMAGES),
    }
    arrays["test"] = np.array([sorted(set(range(1, 13)) - set(row.astype(int))) for row in arrays["train"]], dtype=float)
    arrays["hrs2"][0, int(arrays["test"][0, 0]) - 1] = np.nan  # a test image no participant of half 2 saw
    scipy.io.savemat(data / "Image data" / "target_images.mat", {"img": arrays["img"]})
    scipy.io.savemat(data / "Random splits" / "image_train_indices.mat", {"image_train_indices": arrays["train"]})
    scipy.io.savemat(data / "Random splits" / "image_test_indices.mat", {"image_test_indices": arrays["test"]})
    scipy.io.savemat(data / "Random splits" / "subject_hrs1.mat", {"subject_hrs1": arrays["hrs1"]})
    scipy.io.savemat(data / "Random splits" / "subject_hrs2.mat", {"subject_hrs2": arrays["hrs2"]})
    cell = np.empty((1, SUN_IMAGES), dtype=object)  # sorted_target_data{i}: a cell array of structs
    for i in range(SUN_IMAGES):
        cell[0, i] = {"hits": int(arrays["hits"][i]), "misses": int(arrays["misses"][i]), "filepath": f"img_{i}.jpg"}
    scipy.io.savemat(data / "Experiment data" / "sorted_target_data.mat", {"sorted_target_data": cell})
    return data.parent, arrays


def test_sun_keeps_the_release_splits_and_the_two_halves_of_participants(
    sun_release: tuple[Path, dict[str, np.ndarray]], tmp_path: Path
) -> None:
    src, arrays = sun_release
    warnings = WarningCounter("test")
    dst = _convert(tmp_path, convert_sun(src, "halves", 0, warnings))
    assert list_folds(dst) == [1, 2, 3]
    assert warnings.counts == {"no score": 1}
    for k in range(SUN_SPLITS):
        train, val, test = (_split(dst, s, k + 1) for s in ("train", "val", "test"))
        release_train = {f"target_{int(i):04d}.png" for i in arrays["train"][k]}
        assert set(train) | set(val) == release_train and not set(train) & set(val) and len(val) == 1
        expected_test = {f"target_{int(i):04d}.png": arrays["hrs2"][k, int(i) - 1] for i in arrays["test"][k]}
        expected_test = {n: s for n, s in expected_test.items() if np.isfinite(s)}
        assert test == pytest.approx(expected_test, abs=1e-6)
        for name, score in {**train, **val}.items():
            assert score == pytest.approx(arrays["hrs1"][k, int(name[7:11]) - 1], abs=1e-6)
    written = sorted(p.name for p in (dst / "images").iterdir())
    assert written == [f"target_{i:04d}.png" for i in range(1, 13)]  # the textures are in no split
    pixels = cv2.cvtColor(cv2.imread(str(dst / "images" / "target_0007.png")), cv2.COLOR_BGR2RGB)
    assert np.array_equal(pixels, arrays["img"][:, :, :, 6])
    assert "Isola" in (dst / "README.txt").read_text()


def test_sun_scores_over_all_participants(sun_release: tuple[Path, dict[str, np.ndarray]], tmp_path: Path) -> None:
    src, arrays = sun_release
    dst = _convert(tmp_path, convert_sun(src / "Data", "all", 0, WarningCounter("test")))
    rates = arrays["hits"] / (arrays["hits"] + arrays["misses"])
    for k in (1, 2, 3):
        for name, score in {**_split(dst, "train", k), **_split(dst, "test", k)}.items():
            assert score == pytest.approx(rates[int(name[7:11]) - 1], abs=1e-6)


def test_sun_bad_files_are_one_line_errors(sun_release: tuple[Path, dict[str, np.ndarray]]) -> None:
    src, arrays = sun_release
    splits = src / "Data" / "Random splits"
    scipy.io.savemat(splits / "image_test_indices.mat", {"image_test_indices": arrays["test"] + 100})
    with pytest.raises(MemgazeError, match="1-based image numbers"):
        convert_sun(src, "halves", 0, WarningCounter("test"))
    (splits / "image_test_indices.mat").write_bytes(b"not a mat file at all")
    with pytest.raises(MemgazeError, match="image_test_indices.mat"):
        convert_sun(src, "halves", 0, WarningCounter("test"))
    with pytest.raises(MemgazeError, match="--scores"):
        convert_sun(src, "median", 0, WarningCounter("test"))


def _memcat_release(root: Path) -> dict[str, float]:
    """MemCat_data/memcat_image_data.csv (with its unnamed index column) and MemCat_images/MemCat/<cat>/<sub>/."""
    rng = np.random.default_rng(1)
    scores = {}
    rows = []
    for i in range(20):
        category, sub = ("animal", "bear") if i < 10 else ("vehicle", "bus")
        name = f"{sub}_{i:03d}.jpg"
        folder = root / "MemCat_images" / "MemCat" / category / sub
        folder.mkdir(parents=True, exist_ok=True)
        if i != 13:  # one image listed in the CSV is missing from the folders
            cv2.imwrite(str(folder / name), rng.integers(0, 256, (24, 24, 3), dtype=np.uint8))
        score = float(rng.uniform(0.4, 0.9))
        written = 1.2 if i == 7 else score  # one score outside [0, 1]: clipped, with a warning
        rows.append([i, name, category, sub, "coco", f"{written:.6f}", f"{score + 0.05:.6f}"])
        if i != 13:
            scores[f"{category}/{sub}/{name}"] = min(written, 1.0)
    (root / "MemCat_data").mkdir()
    with open(root / "MemCat_data" / "memcat_image_data.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["", "image_file", "category", "subcategory", "source", "memorability_w_fa_correction",
                         "memorability_wo_fa_correction"])
        writer.writerows(rows)
    return scores


def test_memcat_draws_five_partitions_and_keeps_the_category_folders(tmp_path: Path) -> None:
    scores = _memcat_release(tmp_path / "memcat")
    warnings = WarningCounter("test")
    dst = _convert(tmp_path, convert_memcat(tmp_path / "memcat", "memorability_w_fa_correction", 5, 0, warnings))
    assert warnings.counts == {"missing image": 1, "score clipped": 1}
    assert list_folds(dst) == [1, 2, 3, 4, 5]
    tests = []
    for k in range(1, 6):
        parts = [_split(dst, s, k) for s in ("train", "val", "test")]
        assert [len(p) for p in parts] == [13, 2, 4]  # round(0.7 * 19), round(0.1 * 19), the rest
        merged = {n: s for p in parts for n, s in p.items()}
        assert sum(len(p) for p in parts) == len(merged) and merged == pytest.approx(scores, abs=1e-6)
        tests.append(sorted(parts[2]))
    assert len({tuple(t) for t in tests}) > 1  # the splits differ
    assert (dst / "images" / "animal" / "bear" / "bear_000.jpg").read_bytes() == (
        tmp_path / "memcat" / "MemCat_images" / "MemCat" / "animal" / "bear" / "bear_000.jpg").read_bytes()
    again = convert_memcat(tmp_path / "memcat", "memorability_wo_fa_correction", 5, 0, WarningCounter("test"))
    write_dataset(dst, again)  # an earlier conversion is replaced
    other = {n: s for split in ("train", "val", "test") for n, s in _split(dst, split, 1).items()}
    assert other["animal/bear/bear_000.jpg"] == pytest.approx(scores["animal/bear/bear_000.jpg"] + 0.05, abs=1e-6)
    assert other["animal/bear/bear_007.jpg"] < 1.0  # the other column has its own, unclipped score


def test_memcat_errors_are_one_line_and_nothing_is_overwritten(tmp_path: Path) -> None:
    _memcat_release(tmp_path / "memcat")
    with pytest.raises(MemgazeError, match="no column memorability"):
        convert_memcat(tmp_path / "memcat", "memorability", 5, 0, WarningCounter("test"))
    precious = tmp_path / "mine"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep")
    converted = convert_memcat(tmp_path / "memcat", "memorability_w_fa_correction", 2, 0, WarningCounter("test"))
    with pytest.raises(MemgazeError, match="refusing to overwrite"):
        write_dataset(precious, converted)
    assert (precious / "notes.txt").read_text() == "keep"
    proc = subprocess.run([sys.executable, "-m", "memgaze.train.convert", "memcat", str(tmp_path / "nowhere"),
                           str(tmp_path / "out")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert [line for line in proc.stderr.splitlines() if line.startswith("error:")] == [
        f"error: {tmp_path / 'nowhere'}: memcat_image_data.csv not found (looked for MemCat_data/memcat_image_data.csv, "
        "data/memcat_image_data.csv, memcat_image_data.csv)"]


def _figrim_release(root: Path) -> dict[str, tuple[int, int, int, int]]:
    """image_data_targets.mat (a MATLAB struct array) and Targets/<category>/<file>; returns the hit counts."""
    rng = np.random.default_rng(2)
    fields = [("filename", "O"), ("category", "O"), ("amt1", "O"), ("amt2", "O")]
    table = np.zeros((1, 12), dtype=fields)
    counts = {}
    for i in range(12):
        category = ("kitchen", "bathroom", "highway")[i % 3]
        filename = f"sun_{i:04d}.jpg"
        h1, m1, h2, m2 = (int(v) for v in rng.integers(1, 30, 4))
        table[0, i] = (filename, category, {"hits": h1, "misses": m1, "false_alarms": 2, "correct_rejections": 40},
                       {"hits": h2, "misses": m2, "false_alarms": 3, "correct_rejections": 38})
        folder = root / "Targets" / category
        folder.mkdir(parents=True, exist_ok=True)
        if i != 5:
            cv2.imwrite(str(folder / filename), rng.integers(0, 256, (20, 20, 3), dtype=np.uint8))
            counts[f"{category}/{filename}"] = (h1, m1, h2, m2)
    scipy.io.savemat(root / "image_data_targets.mat", {"image_data_targets": table})
    return counts


@pytest.mark.parametrize("experiment", ["amt2", "amt1"])
def test_figrim_scores_are_hit_rates_of_the_chosen_experiment(tmp_path: Path, experiment: str) -> None:
    counts = _figrim_release(tmp_path / "figrim")
    warnings = WarningCounter("test")
    dst = _convert(tmp_path, convert_figrim(tmp_path / "figrim", experiment, 5, 3, warnings))
    assert warnings.counts == {"missing image": 1}
    first = 2 if experiment == "amt2" else 0
    expected = {n: c[first] / (c[first] + c[first + 1]) for n, c in counts.items()}
    for k in range(1, 6):
        merged = {n: s for split in ("train", "val", "test") for n, s in _split(dst, split, k).items()}
        assert merged == pytest.approx(expected, abs=1e-6)
    with pytest.raises(MemgazeError, match="--experiment"):
        convert_figrim(tmp_path / "figrim", "amt3", 5, 0, WarningCounter("test"))
    with pytest.raises(MemgazeError, match="no image_data_targets.mat"):
        convert_figrim(tmp_path / "figrim" / "Targets", "amt2", 5, 0, WarningCounter("test"))
