"""GazeStore: PNG heatmaps, fixations.csv, precedence, binary fixation maps, bad gaze input."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from memgaze.console import WarningCounter
from memgaze.train.data.dataset import list_users
from memgaze.train.data.gaze import GazeStore, gaussian_map


def _write_csv(root: Path, rows: list[str], header: str = "user,image,x,y,duration_ms") -> None:
    (root / "gaze" / "fixations.csv").write_text("\n".join([header, *rows]) + "\n")


def test_png_heatmaps(demo_data: Path) -> None:
    store = GazeStore(demo_data, (8, 12), warnings=WarningCounter("t"))
    assert store.users_for("demo_00003.jpg") == sorted(["user_bright", "user_faces", "user_shapes", "user_text"])
    assert store.users_for("demo_00003") == store.users_for("demo_00003.jpg")
    heat = store.heatmap("user_faces", "demo_00003.jpg")
    assert heat is not None and heat.dtype == np.float32 and heat.shape == (8, 12)
    assert heat.sum() == pytest.approx(1.0, abs=1e-5) and heat.min() >= 0
    png = cv2.imread(str(demo_data / "gaze" / "user_faces" / "demo_00003.png"), cv2.IMREAD_GRAYSCALE)
    small = cv2.resize(png.astype(np.float32), (12, 8), interpolation=cv2.INTER_AREA)
    np.testing.assert_allclose(heat, small / small.sum(), rtol=1e-5)
    assert store.heatmap("nobody", "demo_00003.jpg") is None
    assert store.heatmap("user_faces", "not_an_image") is None
    peaks = store.fixations("user_faces", "demo_00003.jpg")  # CSV fixations exist for the demo
    assert peaks is not None and peaks.dtype == bool and peaks.any()


def test_fixations_by_hand(demo_copy: Path) -> None:
    # Image demo_00000.jpg is 64x64; map 16x16 → scale 1/4. A fixation at pixel (34, 10) lands
    # at map x = (34.5)/4 - 0.5 = 8.125, y = (10.5)/4 - 0.5 = 2.125 → nearest map pixel (8, 2).
    shutil.rmtree(demo_copy / "gaze" / "user_text")
    _write_csv(demo_copy, ["user_text,demo_00000.jpg,34,10,200", "user_text,demo_00000,2,60,600"])
    store = GazeStore(demo_copy, 16, sigma_px=1.0, warnings=WarningCounter("t"))
    heat = store.heatmap("user_text", "demo_00000.jpg")
    assert heat is not None and heat.sum() == pytest.approx(1.0, abs=1e-5)
    # Two Gaussians, durations 200 and 600 → the second peak is ~3x the first.
    first, second = heat[2, 8], heat[15, 0]  # (2, 60) → x = 2.5/4-.5 = 0.125, y = 60.5/4-.5 = 14.625
    assert second / first == pytest.approx(3.0 * np.exp(-(0.125**2 + 0.375**2) / 2) / np.exp(-(0.125**2 * 2) / 2), rel=1e-3)
    expected = gaussian_map(np.array([[8.125, 2.125], [0.125, 14.625]]), np.array([200.0, 600.0]), (16, 16), 1.0)
    np.testing.assert_allclose(heat, expected / expected.sum(), rtol=1e-5)
    fix = store.fixations("user_text", "demo_00000.jpg")
    assert fix is not None and set(zip(*np.nonzero(fix))) == {(2, 8), (15, 0)}
    wide = GazeStore(demo_copy, 16, sigma_px=3.0, warnings=WarningCounter("t")).heatmap("user_text", "demo_00000.jpg")
    assert wide is not None and wide.max() < heat.max()  # larger sigma spreads the mass


def test_png_wins_over_fixations_and_peaks_from_png(demo_copy: Path) -> None:
    _write_csv(demo_copy, ["user_faces,demo_00000.jpg,1,1,300"])  # far from the PNG's peak
    store = GazeStore(demo_copy, 16, warnings=WarningCounter("t"))
    (demo_copy / "gaze" / "fixations.csv").unlink()
    png_only = GazeStore(demo_copy, 16, warnings=WarningCounter("t"))
    np.testing.assert_array_equal(store.heatmap("user_faces", "demo_00000.jpg"), png_only.heatmap("user_faces", "demo_00000.jpg"))
    assert np.argwhere(store.fixations("user_faces", "demo_00000.jpg")).tolist() == [[0, 0]]  # from the CSV
    peaks = png_only.fixations("user_faces", "demo_00000.jpg")
    heat = png_only.heatmap("user_faces", "demo_00000.jpg")
    assert peaks is not None and heat is not None
    assert peaks[np.unravel_index(np.argmax(heat), heat.shape)] and (heat[peaks] >= 0.3 * heat.max()).all()


def test_fixation_only_users_are_listed(demo_copy: Path) -> None:
    _write_csv(demo_copy, ["zoe,demo_00001.jpg,5,5,100"])
    assert list_users(demo_copy) == sorted(["user_bright", "user_faces", "user_shapes", "user_text", "zoe"])
    assert "zoe" in GazeStore(demo_copy, 8).users_for("demo_00001.jpg")


def test_bad_fixations_warn_once_each(demo_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write_csv(
        demo_copy,
        [
            "zoe,demo_00001.jpg,5,5,100",
            "zoe,demo_00001.jpg,500,5,100",  # outside the 64x64 image
            "zoe,demo_00001.jpg,-1,70,100",  # outside too: one warning for both
            "zoe,demo_00001.jpg,abc,5,100",  # malformed
            "zoe,demo_00001.jpg,5,5",  # too short
            "zoe,demo_00002.jpg,5,5,-3",  # non-positive duration
            "zoe,demo_00003.jpg,99,99,100",  # all outside → no map
        ],
    )
    warnings = WarningCounter("t")
    store = GazeStore(demo_copy, 8, warnings=warnings)
    assert warnings.counts["bad fixation row"] == 3
    heat = store.heatmap("zoe", "demo_00001.jpg")
    assert heat is not None and heat.sum() == pytest.approx(1.0, abs=1e-5)
    store.heatmap("zoe", "demo_00001.jpg")  # a second read does not warn again
    assert store.heatmap("zoe", "demo_00003.jpg") is None
    assert warnings.counts["fixation outside image"] == 2
    err = capsys.readouterr().err
    assert "2 fixation(s) of zoe on demo_00001.jpg lie outside the 64x64 image" in err
    assert len(err.strip().splitlines()) == 5  # one line per problem


def test_bad_header_ignores_the_file(demo_copy: Path) -> None:
    _write_csv(demo_copy, ["zoe,demo_00001.jpg,5,5"], header="user,image,x,y")
    warnings = WarningCounter("t")
    store = GazeStore(demo_copy, 8, warnings=warnings)
    assert warnings.counts["bad fixations file"] == 1 and "zoe" not in store.users


def test_unreadable_and_blank_heatmaps_are_skipped(demo_copy: Path) -> None:
    (demo_copy / "gaze" / "user_text" / "demo_00001.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    cv2.imwrite(str(demo_copy / "gaze" / "user_text" / "demo_00002.png"), np.zeros((10, 30), np.uint8))
    odd = np.zeros((7, 40), np.uint8)
    odd[3, 20] = 200  # any size and aspect is accepted
    cv2.imwrite(str(demo_copy / "gaze" / "user_text" / "demo_00004.png"), odd)
    warnings = WarningCounter("t")
    store = GazeStore(demo_copy, 8, warnings=warnings)
    assert store.heatmap("user_text", "demo_00001.jpg") is None
    assert store.heatmap("user_text", "demo_00002.jpg") is None
    odd_map = store.heatmap("user_text", "demo_00004.jpg")
    assert odd_map is not None and odd_map.shape == (8, 8) and odd_map.sum() == pytest.approx(1.0, abs=1e-5)
    assert warnings.counts == {"unreadable heatmap": 1, "blank heatmap": 1}
