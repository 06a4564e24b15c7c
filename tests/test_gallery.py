"""memgaze-run --report: the ranked gallery, opened in headless Chromium (skipped with a reason where it is absent)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from memgaze.runtime.gallery import card_text, histogram_svg
from runtime_fixtures import make_bundle

RUN = [str(Path(sys.executable).with_name("memgaze-run"))]
# Flat photos in six colours (BGR) a screenshot tells apart.
COLOURS = {"red": (0, 0, 255), "green": (0, 200, 0), "blue": (255, 0, 0), "yellow": (0, 255, 255),
           "magenta": (255, 0, 255), "cyan": (255, 255, 0)}
CHROMIUM = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
            "--window-size=1400,2000", "--virtual-time-budget=5000"]


@pytest.fixture(scope="module")
def carded_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bundle whose manifest carries a model card."""
    folder = make_bundle(tmp_path_factory.mktemp("bundle"), size=64, personalized=False)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["card"] = {"name": "Tiny test model", "licence": "CC0-1.0", "file": ""}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def _photos(folder: Path) -> Path:
    for index, (name, colour) in enumerate(COLOURS.items()):
        album = folder / ("a" if index % 2 else "b")
        album.mkdir(parents=True, exist_ok=True)
        photo = np.full((240, 320, 3), colour, np.uint8)
        cv2.imwrite(str(album / f"{name}.jpg"), photo, [cv2.IMWRITE_JPEG_QUALITY, 95])
    return folder


def _chromium(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    profile = tempfile.mkdtemp(dir=tmp_path)
    return subprocess.run(CHROMIUM + [f"--user-data-dir={profile}", *args], capture_output=True, text=True, timeout=120)


def _centre_of(screenshot: np.ndarray, colour: tuple[int, int, int]) -> tuple[float, float]:
    """Centroid (x, y) of the pixels of ``colour`` (JPEG and scaling tolerance)."""
    mask = np.all(np.abs(screenshot.astype(np.int16) - np.array(colour, np.int16)) <= 24, axis=2)
    ys, xs = np.nonzero(mask)
    assert xs.size > 2000, f"colour {colour} is not on the screenshot"
    return float(xs.mean()), float(ys.mean())


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Chromium is not installed (apt-get install chromium)")
def test_gallery_renders_thumbnails_in_score_order(carded_bundle: Path, tmp_path: Path) -> None:
    photos = _photos(tmp_path / "photos")
    report, rows = tmp_path / "gallery", tmp_path / "scores.jsonl"
    result = subprocess.run(RUN + ["--source", str(photos), "--model", str(carded_bundle), "--headless", "--jsonl", str(rows),
                                   "--report", str(report)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    scores = {json.loads(line)["file"]: json.loads(line)["score"] for line in rows.read_text().splitlines()}
    expected = sorted(scores, key=lambda name: -scores[name])
    assert len(set(scores.values())) == len(COLOURS), f"the test needs distinct scores: {scores}"
    assert sorted(p.relative_to(report).as_posix() for p in report.rglob("*.jpg")) == sorted(
        [f"thumbs/{i:06d}.jpg" for i in range(6)] + [f"thumbs/{i:06d}.heat.jpg" for i in range(6)])  # self-contained

    page = (report / "index.html").as_uri()
    dom = _chromium(["--dump-dom", page], tmp_path).stdout
    assert [f for f in re.findall(r"data-file=\"([^\"]+)\"", dom)] == expected  # the rendered DOM, highest score first
    ranked = [float(s) for s in re.findall(r"data-score=\"([0-9.]+)\"", dom)]
    assert ranked == sorted(ranked, reverse=True) and ranked == pytest.approx([scores[f] for f in expected], abs=1e-6)
    assert "Tiny test model" in dom and "CC0-1.0" in dom and "<svg" in dom

    # The screenshot without overlays (#plain): each flat photo's colour at its place, read like text.
    shot = tmp_path / "plain.png"
    _chromium([f"--screenshot={shot}", page + "#plain"], tmp_path)
    plain = cv2.imread(str(shot))
    assert plain is not None, "Chromium wrote no screenshot"
    centres = {name: _centre_of(plain, COLOURS[Path(name).stem]) for name in expected}
    row_height = 150  # thumbnails of one grid row lie within a few pixels of the same height
    reading = sorted(expected, key=lambda name: (round(centres[name][1] / row_height), centres[name][0]))
    assert reading == expected, centres
    # With the heatmaps laid over them (the default), the thumbnails look different.
    overlaid_path = tmp_path / "overlaid.png"
    _chromium([f"--screenshot={overlaid_path}", page], tmp_path)
    overlaid = cv2.imread(str(overlaid_path))
    x, y = (int(v) for v in centres[expected[0]])
    patch = (slice(y - 30, y + 30), slice(x - 30, x + 30))
    assert np.abs(overlaid[patch].astype(np.int16) - plain[patch].astype(np.int16)).mean() > 20


def test_gallery_card_falls_back_and_a_foreign_folder_is_refused(tmp_path: Path) -> None:
    assert card_text("", "", tmp_path / "deploy") == ("deploy", "not stated")
    assert card_text("ResMem-distilled Lite0", "NON-COMMERCIAL", tmp_path) == ("ResMem-distilled Lite0", "NON-COMMERCIAL")
    bundle = make_bundle(tmp_path / "b", size=64, personalized=False)
    photos = _photos(tmp_path / "photos")
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "mine.txt").write_text("keep me")
    refused = subprocess.run(RUN + ["--source", str(photos), "--model", str(bundle), "--headless", "--report", str(notes)],
                             capture_output=True, text=True, timeout=120)
    lines = refused.stderr.strip().splitlines()
    assert refused.returncode == 2 and len(lines) == 1 and "not a gallery memgaze wrote" in lines[0], refused.stderr
    assert (notes / "mine.txt").read_text() == "keep me"
    report = tmp_path / "gallery"
    for _ in range(2):  # a gallery is replaced as a whole by the next run
        done = subprocess.run(RUN + ["--source", str(photos), "--model", str(bundle), "--headless", "--report", str(report)],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
    page = (report / "index.html").read_text()
    assert "Scored by b (licence: not stated)" in page and page.count("class='photo'") == 6
    inside = photos / "gallery"  # a gallery written inside the photos is not scored by the next run
    for _ in range(2):
        again = subprocess.run(RUN + ["--source", str(photos), "--model", str(bundle), "--headless", "--report", str(inside)],
                               capture_output=True, text=True, timeout=120)
        assert again.returncode == 0 and "6 frames" in again.stderr, again.stderr


def test_histogram_counts_every_score() -> None:
    svg = histogram_svg([0.31, 0.32, 0.32, 0.58, 0.9])
    counts = [int(n) for n in re.findall(r": (\d+)</title>", svg)]
    assert sum(counts) == 5 and len(counts) == 20 and counts[0] == 3 and counts[-1] == 1  # 0.31-0.34 ... 0.87-0.90
    assert ">0.31<" in svg and ">0.90<" in svg


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Chromium is not installed (apt-get install chromium)")
def test_damaged_files_are_listed_apart_below_the_ranking(carded_bundle: Path, tmp_path: Path) -> None:
    from runtime_fixtures import make_damaged

    photos = _photos(tmp_path / "photos")
    damaged = make_damaged(photos / "card")
    report = tmp_path / "gallery"
    result = subprocess.run(RUN + ["--source", str(photos), "--model", str(carded_bundle), "--headless", "--report", str(report)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    dom = _chromium(["--dump-dom", (report / "index.html").as_uri()], tmp_path).stdout
    ranked = re.findall(r"<figure class=\"photo\"[^>]*data-file=\"([^\"]+)\"", dom)
    assert sorted(ranked) == sorted(f"{'a' if i % 2 else 'b'}/{name}.jpg" for i, name in enumerate(COLOURS))  # never ranked
    listed = re.findall(r"<tr class=\"failed\" data-file=\"([^\"]+)\"><td>[^<]*</td><td>([^<]*)</td>", dom)
    assert sorted(name for name, _ in listed) == sorted(f"card/{name}" for name in damaged)
    assert all(damaged[name.split("/")[1]] in why for name, why in listed)
    assert dom.index("4 files could not be scored") > dom.rindex("<figure class=\"photo\"")  # below the ranking
