"""Damaged photos are rows with an error, never ranked and never the end of a run; phone photos (HEIC through
pillow-heif's own encoder, AVIF) are read upright; a gallery that cannot be written is refused before any scoring."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

import memgaze
from memgaze.damage import damage, sniff
from memgaze.errors import MemgazeError
from memgaze.media import UnreadableImage, decode_image_for, read_image_for
from runtime_fixtures import make_bundle, make_damaged, make_folder, synthetic_frame

RUN = [str(Path(sys.executable).with_name("memgaze-run"))]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_bundle(tmp_path_factory.mktemp("bundle"), size=64, personalized=False)


def test_each_kind_of_damage_is_named_and_whole_files_pass(tmp_path: Path) -> None:
    expected = make_damaged(tmp_path / "bad")
    for name, reason in expected.items():
        with pytest.raises(UnreadableImage, match=reason):
            read_image_for(tmp_path / "bad" / name, (64, 64))
    assert cv2.imread(str(tmp_path / "bad" / "cut.jpg")) is not None  # what OpenCV alone reads, grey below the cut
    whole = cv2.imencode(".jpg", synthetic_frame(1, 96))[1].tobytes()
    assert damage(whole, sniff(whole)) is None
    assert damage(whole + b"\x00" * 16, "jpeg") is None  # padding after the marker
    assert damage(whole + b"ftypmp42" + b"\x17" * 4000, "jpeg") is None  # a motion photo: a video after the image
    exif_thumb_only = whole[:2] + b"\xff\xe1\x00\x06\xff\xd9\x00\x00" + whole[2: len(whole) // 2]  # FF D9 before the scan only
    assert damage(exif_thumb_only, "jpeg") == "truncated JPEG (no end-of-image marker)"
    webp = cv2.imencode(".webp", synthetic_frame(2, 96))[1].tobytes()
    assert sniff(webp) == "webp" and damage(webp, "webp") is None and damage(webp[:-10], "webp") is not None
    with pytest.raises(MemgazeError, match="truncated JPEG"):  # the API names the file and the reason
        memgaze.load(make_bundle(tmp_path / "b", size=64, personalized=False)).predict(tmp_path / "bad" / "cut.jpg")


def test_damaged_files_are_rows_with_errors_counted_and_never_fatal(bundle: Path, tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "photos", frames=3, size=96)
    expected = make_damaged(folder)
    out, table = tmp_path / "scores.jsonl", tmp_path / "scores.csv"
    result = subprocess.run(RUN + ["--source", str(folder), "--model", str(bundle), "--headless", "--jsonl", str(out),
                                   "--csv", str(table)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    rows = {r["file"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert sorted(rows) == sorted([*expected, "img_000.jpg", "img_001.jpg", "img_002.jpg"])
    for name, reason in expected.items():
        assert rows[name]["score"] is None and reason in rows[name]["error"], rows[name]
        assert rows[name]["bytes"] == (folder / name).stat().st_size
    assert all(0 <= rows[f"img_00{i}.jpg"]["score"] <= 1 and "error" not in rows[f"img_00{i}.jpg"] for i in range(3))
    assert "undecodable 4" in result.stderr and "3 frames" in result.stderr
    with open(table, newline="") as handle:
        records = {r["file"]: r for r in csv.DictReader(handle)}
    assert {name: (r["score"], r["error"]) for name, r in records.items() if r["error"]} == {
        name: ("", rows[name]["error"]) for name in expected}


def test_a_report_folder_that_cannot_be_made_is_refused_before_scoring(bundle: Path, tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "photos", frames=2, size=64)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    out = tmp_path / "scores.jsonl"
    for report in (blocker / "gallery", Path("/proc/memgaze-gallery")):
        result = subprocess.run(RUN + ["--source", str(folder), "--model", str(bundle), "--headless", "--jsonl", str(out),
                                       "--report", str(report)], capture_output=True, text=True, timeout=120)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1 and "cannot write --report" in lines[0], result.stderr
        assert not out.exists()  # refused before any scoring


def _stored_rotated(path: Path, upright_bgr: np.ndarray, **options: object) -> None:
    """Save ``upright_bgr`` as a phone does: the pixels turned 90° left, EXIF Orientation 6 (turn right to show)."""
    from PIL import Image

    pixels = Image.fromarray(np.ascontiguousarray(upright_bgr[:, :, ::-1])).transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    pixels.save(path, exif=exif.tobytes(), **options)


@pytest.mark.parametrize("suffix", [".jpg", ".heic", ".avif"])
def test_phone_photos_are_read_upright(bundle: Path, tmp_path: Path, suffix: str) -> None:
    pytest.importorskip("pillow_heif", reason='pillow-heif is not installed (pip install "memgaze[heif]")')
    from memgaze.heif import heif_support

    assert heif_support()
    upright = cv2.resize(synthetic_frame(4, 96), (120, 160), interpolation=cv2.INTER_CUBIC)  # 120 wide, 160 high
    path = tmp_path / f"phone{suffix}"
    _stored_rotated(path, upright, quality=95)
    image, _ = read_image_for(path, None)
    assert image.shape == upright.shape  # turned upright as the file asks
    assert np.abs(image.astype(np.int16) - upright).mean() < 6  # the same picture (lossy codecs)
    assert decode_image_for(path.read_bytes(), (64, 64))[0].shape == upright.shape
    with memgaze.load(bundle) as model:  # scores like the upright photo
        assert model.predict(path).score == pytest.approx(model.predict(upright).score, abs=0.01)


def test_a_collection_of_heic_photos_is_scored_and_says_which_extra_it_needs_without_it(bundle: Path, tmp_path: Path) -> None:
    pytest.importorskip("pillow_heif", reason='pillow-heif is not installed (pip install "memgaze[heif]")')
    folder = tmp_path / "iphone"
    folder.mkdir()
    for index in range(2):
        _stored_rotated(folder / f"IMG_{index}.HEIC", synthetic_frame(index, 96), quality=90)
    cv2.imwrite(str(folder / "scan.png"), synthetic_frame(7, 96))
    args = ["--source", str(folder), "--model", str(bundle), "--headless", "--jsonl", "-"]
    scored = subprocess.run(RUN + args, capture_output=True, text=True, timeout=120)
    assert scored.returncode == 0, scored.stderr
    assert [(r["file"], r["score"] is not None) for r in map(json.loads, scored.stdout.splitlines())] == [
        ("IMG_0.HEIC", True), ("IMG_1.HEIC", True), ("scan.png", True)]
    # The same folder where pillow-heif cannot be imported: one line names the extra; the HEIC rows say it too.
    without = ("import sys; sys.modules['pillow_heif'] = None; sys.argv[0] = 'memgaze-run'; "
               "from memgaze.entry import memgaze_run; memgaze_run()")
    missing = subprocess.run([sys.executable, "-c", without, *args], capture_output=True, text=True, timeout=120)
    assert missing.returncode == 0, missing.stderr
    hints = [line for line in missing.stderr.splitlines() if 'memgaze[heif]' in line]
    assert len(hints) == 1 and "2 HEIC/HEIF/AVIF" in hints[0], missing.stderr
    rows = [json.loads(line) for line in missing.stdout.splitlines()]
    assert [r["file"] for r in rows if r["score"] is None] == ["IMG_0.HEIC", "IMG_1.HEIC"]
    assert all('memgaze[heif]' in r["error"] for r in rows if r["score"] is None)
