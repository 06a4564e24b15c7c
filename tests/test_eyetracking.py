"""Eye-tracker exports into gaze/fixations.csv, and the viewing geometry, against worked examples.

Every export under tests/data/eyetracking/ is a test file written here in its vendor's documented columns
(README.md there says which is which); no package on PyPI or Debian ships a small real recording in these
formats with its stimuli. The expected positions below are worked by hand from the geometry in each file.
"""

from __future__ import annotations

import csv
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from memgaze.train.convert.__main__ import app
from memgaze.train.convert.detection import Detector, detect_fixations
from memgaze.train.convert.viewing import Rect, Screen, fit_centred, native_centred, screen_to_image, sigma_image_px

DATA = Path(__file__).parent / "data" / "eyetracking"


@pytest.fixture
def stimuli(tmp_path: Path) -> Path:
    """The two stimuli the test exports show: cat.jpg 800x600 and dog.png 400x400."""
    folder = tmp_path / "stimuli"
    folder.mkdir()
    Image.new("RGB", (800, 600), (90, 120, 150)).save(folder / "cat.jpg")
    Image.new("RGB", (400, 400), (150, 120, 90)).save(folder / "dog.png")
    return folder


def _convert(*args: str | Path) -> tuple[dict[str, list[tuple[str, float, float, float, str]]], dict]:  # type: ignore[type-arg]
    """Run the command; return the written rows by user and the conversion record."""
    out = Path(args[args.index("--out") + 1])
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    rows: dict[str, list[tuple[str, float, float, float, str]]] = {}
    with open(out / "gaze" / "fixations.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            rows.setdefault(row["user"], []).append(
                (row["image"], float(row["x"]), float(row["y"]), float(row["duration_ms"]), row.get("sigma_px") or ""))
    return rows, json.loads((out / "gaze" / "conversion.json").read_text())


def _counts(record: dict, user: str) -> tuple[int, int, int]:  # type: ignore[type-arg]
    row = next(r for r in record["users"] if r["user"] == user)
    return row["kept"], row["off_image"], row["other"]


def _xy(rows: list[tuple[str, float, float, float, str]]) -> list[tuple[str, float, float]]:
    return [(image, round(x, 2), round(y, 2)) for image, x, y, _, _ in rows]


def test_geometry_worked_examples() -> None:
    # 800x600 fitted on 1920x1080: scale min(2.4, 1.8) = 1.8 → 1440x1080, left edge (1920-1440)/2 = 240.
    assert fit_centred((800, 600), (1920, 1080)) == Rect(240.0, 0.0, 1440.0, 1080.0)
    # A tall 600x800 on the same screen: scale 1.35 → 810x1080 at x = 555.
    assert fit_centred((600, 800), (1920, 1080)) == Rect(555.0, 0.0, 810.0, 1080.0)
    assert native_centred((800, 600), (1920, 1080)) == Rect(560.0, 240.0, 800.0, 600.0)
    rect = Rect(240.0, 0.0, 1440.0, 1080.0)
    assert screen_to_image(960, 540, rect, (800, 600)) == pytest.approx((400.0, 300.0))
    # (300 - 240) * 800/1440 = 33.33, 100 * 600/1080 = 55.56
    assert screen_to_image(300, 100, rect, (800, 600)) == pytest.approx((33.333, 55.556), abs=1e-3)
    # One degree at 60 cm spans 2 * 60 * tan(0.5°) = 1.047224 cm; on a 53 cm, 1920 px wide screen that is
    # 1.047224 * 1920 / 53 = 37.937 screen pixels, and 37.937 * 800 / 1440 = 21.076 pixels of the fitted image.
    ppd = Screen(1920, 1080, 53.0, 60.0).pixels_per_degree()
    assert ppd == pytest.approx(37.937, abs=1e-3)
    assert sigma_image_px(1.0, ppd, rect, (800, 600)) == pytest.approx(21.076, abs=1e-3)
    assert Screen(1920, 1080).pixels_per_degree() is None


def test_eyelink_asc_imgload_rectangles_and_counts(stimuli: Path, tmp_path: Path) -> None:
    # Test file written to SR Research's ASC layout (edf2asc): 500 Hz, IMGLOAD CENTER with a size, TOP_LEFT without.
    rows, record = _convert("eyelink", DATA / "p01.asc", "--stimuli", stimuli, "--out", tmp_path / "ds",
                            "--screen-cm", "53", "--distance-cm", "60")
    # cat.jpg drawn at CENTER 960 540 1440 1080 → Rect(240, 0, 1440, 1080); dog.png TOP_LEFT 760 340 at 400x400.
    assert _xy(rows["p01"]) == [("cat.jpg", 400.0, 300.0), ("cat.jpg", 33.33, 55.56), ("cat.jpg", 700.0, 500.0),
                                ("dog.png", 200.0, 200.0), ("dog.png", 340.0, 360.0)]
    # durations: pymovements' offset − onset of the EFIX events, 125 samples at 2 ms → 248 ms
    assert rows["p01"][0][3] == 248.0
    # the screen came from DISPLAY_COORDS; sigma = 37.937 * 800/1440 for cat, 37.937 * 400/400 for dog
    assert record["screen"]["width_px"] == 1920 and record["screen"]["height_px"] == 1080
    assert float(rows["p01"][0][4]) == pytest.approx(21.08, abs=0.01)
    assert float(rows["p01"][3][4]) == pytest.approx(37.94, abs=0.01)
    # off-image: (120, 500) left of the cat; other: the two fixations on the fixation cross outside any image
    assert _counts(record, "p01") == (5, 1, 2)
    assert (tmp_path / "ds" / "images" / "cat.jpg").is_file()


def test_eyelink_without_events_or_samples(stimuli: Path, tmp_path: Path) -> None:
    text = (DATA / "p01.asc").read_text()
    events_only = tmp_path / "p02.asc"  # edf2asc -e: events, no samples → the EFIX lines' own averages
    events_only.write_text("\n".join(line for line in text.splitlines() if not re.match(r"^\d", line)) + "\n")
    rows, record = _convert("eyelink", events_only, "--stimuli", stimuli, "--out", tmp_path / "a")
    assert _xy(rows["p02"])[:2] == [("cat.jpg", 400.0, 300.0), ("cat.jpg", 33.33, 55.56)]
    assert rows["p02"][0][3] == 250.0  # EFIX's own duration
    assert _counts(record, "p02") == (5, 1, 2)
    samples_only = tmp_path / "p03.asc"  # edf2asc -s: samples only → I-DT (1°, 100 ms) by pymovements
    samples_only.write_text("\n".join(line for line in text.splitlines() if not re.match(r"^[SE](FIX|SACC)", line)) + "\n")
    rows, record = _convert("eyelink", samples_only, "--stimuli", stimuli, "--out", tmp_path / "b", "--screen-cm", "53",
                            "--distance-cm", "60")
    assert record["detector_if_no_efix"] == {"method": "I-DT", "dispersion_deg": 1.0, "min_duration_ms": 100.0}
    # each detected fixation may take in the slow end of the saccade before it: within 6 pixels of the EFIX place
    assert [i for i, _, _ in _xy(rows["p03"])] == ["cat.jpg"] * 3 + ["dog.png"] * 2
    assert np.array([(x, y) for _, x, y in _xy(rows["p03"])]) == pytest.approx(
        np.array([(400, 300), (33.33, 55.56), (700, 500), (200, 200), (340, 360)]), abs=6)


def test_tobii_prolab_tsv_uses_the_media_rectangle(stimuli: Path, tmp_path: Path) -> None:
    # Test file in Pro Lab's data-export columns: cat.jpg presented 1200x900 at (360, 90), dog.png 400x400 at (760, 340).
    rows, record = _convert("tobii", DATA / "tobii_prolab.tsv", "--stimuli", stimuli, "--out", tmp_path / "ds")
    # (960-360)*800/1200 = 400, (540-90)*600/900 = 300; (400-360)*2/3 = 26.67, (120-90)*2/3 = 20
    assert _xy(rows["P1"]) == [("cat.jpg", 400.0, 300.0), ("cat.jpg", 26.67, 20.0)]
    assert _xy(rows["P2"]) == [("dog.png", 200.0, 200.0), ("dog.png", 340.0, 360.0)]
    assert rows["P1"][0][3] == 250.0  # Gaze event duration
    assert _counts(record, "P1") == (2, 1, 1)  # (200, 500) left of the media; one fixation with no media shown
    assert _counts(record, "P2") == (2, 0, 0)
    assert rows["P1"][0][4] == ""  # no physical screen size given: no sigma column values


def test_tobii_mcs_norm_columns_need_no_geometry(stimuli: Path, tmp_path: Path) -> None:
    lines = (DATA / "tobii_prolab.tsv").read_text().splitlines()
    header = lines[0].split("\t")
    fx = header.index("Fixation point X")
    out = ["\t".join([*header, "Fixation point X (MCSnorm)", "Fixation point Y (MCSnorm)"])]
    for line in lines[1:]:
        cells = line.split("\t")
        cells += ["0.25", "0.5"] if cells[fx] else ["", ""]
        out.append("\t".join(cells))
    export = tmp_path / "mcs.tsv"
    export.write_text("\n".join(out) + "\n")
    rows, _ = _convert("tobii", export, "--stimuli", stimuli, "--out", tmp_path / "ds")
    assert set(_xy(rows["P2"])) == {("dog.png", 100.0, 200.0)}


def test_pupil_core_surface_export(stimuli: Path, tmp_path: Path) -> None:
    export = DATA / "pupil_core" / "rec01" / "exports" / "000" / "surfaces" / "fixations_on_surface_cat.csv"
    rows, record = _convert("pupil-core", export, "--stimuli", stimuli, "--out", tmp_path / "ds")
    # user from the recording folder, image from the surface's name; norm_pos origin bottom-left (y flipped)
    assert _xy(rows["rec01"]) == [("cat.jpg", 400.0, 300.0), ("cat.jpg", 200.0, 150.0)]
    assert rows["rec01"][1][3] == 166.5
    assert _counts(record, "rec01") == (2, 1, 0)


def test_pupil_cloud_marker_mapper_with_events(stimuli: Path, tmp_path: Path) -> None:
    folder = DATA / "pupil_cloud"
    rows, record = _convert("pupil-cloud", folder / "fixations.csv", "--events", folder / "events.csv",
                            "--stimuli", stimuli, "--out", tmp_path / "ds", "--screen", "1920x1080", "--sigma-px", "12")
    # wearer "alice" from sections.csv; origin top-left; events name cat.jpg, then 'blank', then dog.png
    assert _xy(rows["alice"]) == [("cat.jpg", 400.0, 300.0), ("cat.jpg", 200.0, 450.0), ("dog.png", 300.0, 200.0)]
    assert {r[4] for r in rows["alice"]} == {"12.00"}
    assert _counts(record, "alice") == (3, 1, 2)  # off the surface; not located + during the blank screen


def test_pupil_cloud_surface_is_the_screen(stimuli: Path, tmp_path: Path) -> None:
    folder = DATA / "pupil_cloud"
    rows, _ = _convert("pupil-cloud", folder / "fixations.csv", "--image", "cat", "--surface", "screen",
                       "--screen", "1920x1080", "--stimuli", stimuli, "--out", tmp_path / "ds")
    # (0.5, 0.5) of the screen → (960, 540) → (400, 300) on the fitted cat; (0.25, 0.75) → (480, 810) → (133.33, 450)
    assert _xy(rows["alice"])[:2] == [("cat.jpg", 400.0, 300.0), ("cat.jpg", 133.33, 450.0)]


def test_gazepoint_fpog_fractions_of_the_screen(stimuli: Path, tmp_path: Path) -> None:
    rows, record = _convert("gazepoint", DATA / "User_0_all_gaze.csv", "--stimuli", stimuli, "--out", tmp_path / "ds",
                            "--screen", "1920x1080")
    # fitted cat Rect(240, 0, 1440, 1080): (0.5, 0.5) → (400, 300); (0.25, 0.25) → (480, 270) → (133.33, 150)
    assert _xy(rows["User_0"]) == [("cat.jpg", 400.0, 300.0), ("cat.jpg", 133.33, 150.0)]
    assert [r[3] for r in rows["User_0"]] == [250.0, 200.0]  # the last valid FPOGD of each FPOGID
    assert _counts(record, "User_0") == (2, 1, 2)  # (96, 540) off-image; one never valid, one with no media
    # --placement native: the cat at its own size centred, Rect(560, 240, 800, 600): (480, 270) → (-80, 30) is off
    rows, record = _convert("gazepoint", DATA / "User_0_all_gaze.csv", "--stimuli", stimuli, "--out", tmp_path / "n",
                            "--screen", "1920x1080", "--placement", "native")
    assert _xy(rows["User_0"]) == [("cat.jpg", 400.0, 300.0)] and _counts(record, "User_0") == (1, 2, 2)


def test_rects_file_and_other_users_kept(stimuli: Path, tmp_path: Path) -> None:
    rects = tmp_path / "rects.csv"
    rects.write_text("image,x,y,width,height\ncat.jpg,960,540,800,600\n")
    dst = tmp_path / "ds"
    (dst / "gaze").mkdir(parents=True)
    (dst / "gaze" / "fixations.csv").write_text("user,image,x,y,duration_ms\nbob,cat.jpg,10,20,200\nUser_0,cat.jpg,1,1,100\n")
    rows, _ = _convert("gazepoint", DATA / "User_0_all_gaze.csv", "--stimuli", stimuli, "--out", dst, "--screen", "1920x1080",
                       "--rects", rects)
    assert _xy(rows["User_0"]) == [("cat.jpg", 0.0, 0.0)]  # (960, 540) is the rectangle's corner
    assert _xy(rows["bob"]) == [("cat.jpg", 10.0, 20.0)]  # another user's rows survive; User_0's old row is replaced


def test_detection_by_hand() -> None:
    # 500 Hz: 300 ms at (600, 400), a 20 ms jump, 300 ms at (900, 400): two fixations at those places.
    t = np.arange(0, 620, 2.0)
    x = np.where(t < 300, 600.0, np.where(t < 320, 600 + (t - 300) * 15, 900.0))
    xy = np.column_stack([x, np.full_like(x, 400.0)])
    screen = Screen(1920, 1080, 53.0, 60.0)
    for detector in (Detector("idt"), Detector("ivt")):
        found = detect_fixations(t, xy, screen, detector)
        assert len(found) == 2, detector
        assert found[:, 2] == pytest.approx([600.0, 900.0], abs=1.0)
        assert found[:, 1] == pytest.approx([298.0, 298.0], abs=20.0)


def test_bad_input_is_one_line(stimuli: Path, tmp_path: Path) -> None:
    def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "memgaze.train.convert", *map(str, args)], capture_output=True,
                              text=True, timeout=120)

    dst = tmp_path / "ds"
    cases = [
        (("gazepoint", DATA / "User_0_all_gaze.csv", "--stimuli", stimuli, "--out", dst), "--screen"),
        (("gazepoint", DATA / "User_0_all_gaze.csv", "--stimuli", tmp_path / "none", "--out", dst), "not a folder"),
        (("tobii", DATA / "p01.asc", "--stimuli", stimuli, "--out", dst), "Participant name"),
        (("eyelink", DATA / "tobii_prolab.tsv", "--stimuli", stimuli, "--out", dst), "EyeLink ASC"),
        (("gazepoint", DATA / "User_0_all_gaze.csv", "--stimuli", stimuli, "--out", dst, "--screen", "big"), "WIDTHxHEIGHT"),
    ]
    for args, needle in cases:
        proc = run(*args)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and needle in errors[0], proc.stderr
    assert not dst.exists()  # nothing written by a failed conversion


def test_gaze_store_reads_sigma_in_image_pixels(tmp_path: Path) -> None:
    from memgaze.train.data.gaze import GazeStore

    (tmp_path / "images").mkdir()
    Image.new("RGB", (100, 50)).save(tmp_path / "images" / "a.png")
    (tmp_path / "gaze").mkdir()
    # map 10x10 of a 100x50 image: x_map = (44.5 + 0.5) * 10/100 - 0.5 = 4, y_map = (22 + 0.5) * 10/50 - 0.5 = 4;
    # sigma 20 image pixels → 2 map pixels across, 4 down.
    (tmp_path / "gaze" / "fixations.csv").write_text("user,image,x,y,duration_ms,sigma_px\nu,a.png,44.5,22,200,20\n")
    heat = GazeStore(tmp_path, (10, 10)).heatmap("u", "a")
    assert heat is not None and np.unravel_index(heat.argmax(), heat.shape) == (4, 4)
    assert heat[4, 6] / heat[4, 4] == pytest.approx(math.exp(-0.5), rel=1e-5)
    assert heat[8, 4] / heat[4, 4] == pytest.approx(math.exp(-0.5), rel=1e-5)
    # the store's own sigma (map pixels) set directly still wins: isotropic 1
    direct = GazeStore(tmp_path, (10, 10), sigma_px=1.0).heatmap("u", "a")
    assert direct is not None and direct[4, 5] / direct[4, 4] == pytest.approx(math.exp(-0.5), rel=1e-5)


def test_eyelink_edf_real_recording(tmp_path: Path) -> None:
    """A REAL EyeLink recording: eyelinkio's own test file test_2_raw.edf (EyeLink 1000 Plus, 1000 Hz, left eye,
    40 trials marked TRIALID 1..40 on a 1920x1080 screen; BSD-3-Clause, installed with eyelinkio). Its stimuli
    are not shipped, so each trial gets a 192x108 stand-in (the screen's shape, fitted: one image pixel per ten
    screen pixels); the fixations, messages and screen are the recording's own."""
    eyelinkio = pytest.importorskip("eyelinkio")
    edf_path = Path(eyelinkio.__file__).parent / "tests" / "data" / "test_2_raw.edf"
    stimuli = tmp_path / "stimuli"
    stimuli.mkdir()
    for trial in range(1, 41):
        Image.new("RGB", (192, 108)).save(stimuli / f"{trial}.png")
    rows, record = _convert("eyelink", edf_path, "--image-message", r"^TRIALID (\d+)$", "--stimuli", stimuli,
                            "--out", tmp_path / "ds")
    # the expected counts straight from eyelinkio's arrays: before TRIALID 1 no image; off the 1920x1080 screen
    edf = eyelinkio.read_edf(str(edf_path))
    fix = edf["discrete"]["fixations"]
    first_trial = min(t for t, m in edf["discrete"]["messages"] if m.startswith(b"TRIALID"))
    during = fix["stime"] >= first_trial
    on_screen = (fix["axp"] >= 0) & (fix["axp"] < 1920) & (fix["ayp"] >= 0) & (fix["ayp"] < 1080)
    assert record["screen"]["width_px"] == 1920 and record["screen"]["height_px"] == 1080  # from GAZE_COORDS
    assert _counts(record, "test_2_raw") == (int((during & on_screen).sum()), int((during & ~on_screen).sum()), int((~during).sum()))
    first = fix[during & on_screen][0]
    image, x, y, duration, _ = rows["test_2_raw"][0]
    assert image == "1.png" and (x, y) == pytest.approx((first["axp"] / 10, first["ayp"] / 10), abs=0.01)
    assert duration == pytest.approx((first["etime"] - first["stime"]) * 1000, abs=0.1)
