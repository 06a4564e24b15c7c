"""The SYNTHETIC demo-dataset generator: layout, determinism, known score, distinct users."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import pytest

from memgaze.errors import MemgazeError
from memgaze.layout import list_folds
from memgaze.train.data.demo import USER_PROFILES, demo_score, main_make_demo, make_demo_dataset, make_scene
from memgaze.correlation import pearson, spearman

USERS4 = ["user_faces", "user_text", "user_bright", "user_shapes"]


def _hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def _split(root: Path, split: str) -> dict[str, float]:
    lines = (root / "splits" / f"{split}_1.txt").read_text().split("\n")
    return {name: float(score) for name, score in (line.split() for line in lines if line)}


def test_layout(demo_data: Path) -> None:
    assert "SYNTHETIC" in (demo_data / "README.txt").read_text()
    images = sorted(p.name for p in (demo_data / "images").iterdir())
    assert len(images) == 48 and all(name.endswith(".jpg") for name in images)
    assert cv2.imread(str(demo_data / "images" / images[0])).shape == (64, 64, 3)
    splits = {s: _split(demo_data, s) for s in ("train", "val", "test")}
    assert [len(v) for v in splits.values()] == [29, 10, 9]  # round(28.8), round(9.6), rest
    assert sorted(n for v in splits.values() for n in v) == images  # disjoint and complete
    for user in USERS4:
        assert sorted(p.name for p in (demo_data / "gaze" / user).iterdir()) == [n.replace(".jpg", ".png") for n in images]
    heat = cv2.imread(str(demo_data / "gaze" / "user_faces" / "demo_00000.png"), cv2.IMREAD_UNCHANGED)
    assert heat.dtype == np.uint8 and heat.ndim == 2 and heat.max() == 255
    with open(demo_data / "gaze" / "fixations.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert set(rows[0]) == {"user", "image", "x", "y", "duration_ms"}
    assert {r["user"] for r in rows} == set(USERS4)
    assert all(0 <= int(r["x"]) < 64 and 0 <= int(r["y"]) < 64 and int(r["duration_ms"]) > 0 for r in rows)


def test_deterministic_and_independent_of_user_count(make_demo: Callable[..., Path], demo_data: Path) -> None:
    again = make_demo(count=48, size=64, users=4, seed=0)
    assert _hashes(again) == _hashes(demo_data)
    fewer = make_demo(count=48, size=64, users=2, seed=0)
    h4, h2 = _hashes(demo_data), _hashes(fewer)
    shared = [k for k in h2 if k.startswith(("images/", "gaze/user_faces/", "gaze/user_text/", "splits/"))]
    assert len(shared) == 48 * 3 + 3 and all(h2[k] == h4[k] for k in shared)
    other = make_demo(count=48, size=64, users=4, seed=1)
    assert _hashes(other)["images/demo_00000.jpg"] != h4["images/demo_00000.jpg"]


def test_five_splits_named_as_lamem_and_split_one_unchanged(make_demo: Callable[..., Path], demo_data: Path) -> None:
    five = make_demo(count=48, size=64, users=4, seed=0, folds=5)
    assert list_folds(five) == [1, 2, 3, 4, 5] and list_folds(demo_data) == [1]
    h1, h5 = _hashes(demo_data), _hashes(five)
    assert all(h5[f"splits/{s}_1.txt"] == h1[f"splits/{s}_1.txt"] for s in ("train", "val", "test"))
    tests = []
    for k in range(1, 6):
        parts = [(five / "splits" / f"{s}_{k}.txt").read_text().split() for s in ("train", "val", "test")]
        names = [n for part in parts for n in part[::2]]
        assert sorted(names) == sorted(p.name for p in (five / "images").iterdir())  # each split is a partition
        tests.append(tuple(parts[2][::2]))
    assert len(set(tests)) == 5
    assert "k = 1..5" in (five / "README.txt").read_text()


def test_scores_follow_the_known_function(demo_data: Path) -> None:
    scores = {**_split(demo_data, "train"), **_split(demo_data, "val"), **_split(demo_data, "test")}
    written, expected = [], []
    for i in range(48):
        scene = make_scene(0, i)
        assert scores[f"demo_{i:05d}.jpg"] == pytest.approx(scene.score, abs=5e-5)
        written.append(scene.score)
        expected.append(demo_score(scene.count("face"), scene.count("bright"), scene.count("text"), scene.busy))
    written_arr = np.array(written)
    assert np.abs(written_arr - np.clip(expected, 0, 1)).max() < 0.2  # noise sd 0.04
    assert spearman(written_arr, np.array(expected)) > 0.9
    assert written_arr.std() > 0.1 and written_arr.min() < 0.3 and written_arr.max() > 0.7


def test_score_is_visible_in_coarse_image_statistics(demo_data: Path) -> None:
    """Learnable from pixels: saturation, skin-like pixels and fine-noise energy predict it."""
    feats, scores = [], []
    for split in ("train", "val", "test"):
        for name, score in _split(demo_data, split).items():
            bgr = cv2.imread(str(demo_data / "images" / name))
            hsv = cv2.cvtColor(bgr, cv2.COLOR_BGR2HSV).astype(np.float32)
            skin = np.mean((hsv[..., 0] < 20) & (hsv[..., 1] > 40) & (hsv[..., 1] < 150) & (hsv[..., 2] > 100))
            busy = np.mean(np.abs(cv2.Laplacian(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), cv2.CV_32F)))
            feats.append([1.0, np.mean(hsv[..., 1] > 200), skin, busy])
            scores.append(score)
    x, y = np.array(feats), np.array(scores)
    fit = x @ np.linalg.lstsq(x, y, rcond=None)[0]
    assert spearman(fit, y) > 0.7


def test_users_look_at_different_things(demo_data: Path) -> None:
    def heat(user: str, i: int) -> np.ndarray:
        return cv2.imread(str(demo_data / "gaze" / user / f"demo_{i:05d}.png"), cv2.IMREAD_GRAYSCALE).astype(float)

    corr = np.mean([pearson(heat("user_faces", i), heat("user_text", i)) for i in range(48)])
    assert corr < 0.5
    # user_faces' gaze peaks on a face whenever the scene has one.
    for i in range(48):
        faces = [e for e in make_scene(0, i).elements if e.kind == "face"]
        if faces:
            y, x = np.unravel_index(np.argmax(heat("user_faces", i)), (64, 64))
            assert any(abs(x / 64 - f.cx) <= f.rx and abs(y / 64 - f.cy) <= f.ry for f in faces)


def test_bad_arguments_and_overwrite_guard(tmp_path: Path, make_demo: Callable[..., Path]) -> None:
    for kwargs in ({"count": 2}, {"image_size": 8}, {"users": 0}, {"users": len(USER_PROFILES) + 1}):
        args = {"count": 10, "image_size": 32, "users": 2, "seed": 0, **kwargs}
        with pytest.raises(MemgazeError):
            make_demo_dataset(tmp_path / "x", **args)
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "precious.txt").write_text("keep")
    with pytest.raises(MemgazeError, match="not a memgaze demo dataset"):
        make_demo_dataset(foreign, 10, 32, 2, 0)
    assert (foreign / "precious.txt").read_text() == "keep"
    demo = make_demo(count=10, size=32, users=1, seed=3)
    make_demo_dataset(demo, 12, 32, 2, 3)  # regenerating a demo folder replaces it
    assert len(list((demo / "images").iterdir())) == 12 and (demo / "gaze" / "user_text").is_dir()


def test_main_make_demo_prints_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    summary = main_make_demo(tmp_path / "d", 10, 32, 2, 0)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "SYNTHETIC" in err and "10 images" in err and summary.users == ["user_faces", "user_text"]
    assert sum(summary.splits.values()) == 10
