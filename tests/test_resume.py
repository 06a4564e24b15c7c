"""Resumable collection runs, each after a real interruption of a memgaze-run subprocess (kill -9, Ctrl-C): every file
ends up in the JSON lines, the CSV and the gallery exactly once; a changed file is scored again; a rerun without
--resume never mixes two runs."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from runtime_fixtures import make_bundle, make_folder

RUN = [str(Path(sys.executable).with_name("memgaze-run"))]
PHOTOS = 1500


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_bundle(tmp_path_factory.mktemp("bundle"), size=64, personalized=False)


def _library(folder: Path, count: int = PHOTOS) -> Path:
    """``count`` photos: eight real JPEGs, each linked under many names (each name is a file to score)."""
    originals = make_folder(folder.with_name("originals"), frames=8, size=72)
    folder.mkdir()
    for index in range(count):
        os.link(originals / f"img_{index % 8:03d}.jpg", folder / f"p{index:05d}.jpg")
    return folder


def _start(args: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(RUN + args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _wait_for_rows(path: Path, rows: int, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None and (not path.exists() or path.read_bytes().count(b"\n") < rows):
        time.sleep(0.02)
    assert process.poll() is None, "the run ended before it could be interrupted"


def _rows(jsonl: Path, table: Path) -> tuple[list[dict], list[dict]]:
    rows = [json.loads(line) for line in jsonl.read_text().splitlines()]
    with open(table, newline="") as handle:
        return rows, list(csv.DictReader(handle))


def test_kill_9_then_resume_loses_and_duplicates_nothing(bundle: Path, tmp_path: Path) -> None:
    photos = _library(tmp_path / "photos")
    jsonl, table, report = tmp_path / "scores.jsonl", tmp_path / "scores.csv", tmp_path / "gallery"
    args = ["--source", str(photos), "--model", str(bundle), "--headless", "--jsonl", str(jsonl), "--csv", str(table),
            "--report", str(report), "--batch", "2", "--decode-threads", "1"]
    first = _start(args)
    _wait_for_rows(jsonl, 100, first)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    before = jsonl.read_text().count("\n")
    assert 100 <= before < PHOTOS and not report.exists()  # killed: the gallery was never put in place
    with open(jsonl, "a") as handle:  # what a kill during a write leaves: half a line
        handle.write('{"source": 0, "file": "p0')

    refused = subprocess.run(RUN + args, capture_output=True, text=True, timeout=120)
    lines = refused.stderr.strip().splitlines()
    assert refused.returncode == 2 and len(lines) == 1 and "--resume" in lines[0], refused.stderr  # never mixed silently

    resumed = subprocess.run(RUN + args + ["--resume"], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "cut an unfinished last line" in resumed.stderr and "already scored by an earlier run" in resumed.stderr
    rows, records = _rows(jsonl, table)
    names = [f"p{i:05d}.jpg" for i in range(PHOTOS)]
    assert sorted(r["file"] for r in rows) == names  # every photo once: nothing lost, nothing twice
    assert sorted(r["file"] for r in records) == names
    scores = {r["file"]: r["score"] for r in rows}
    assert all(scores[f"p{i:05d}.jpg"] == scores[f"p{i % 8:05d}.jpg"] for i in range(PHOTOS))  # the same photo, the same score
    page = (report / "index.html").read_text()
    assert page.count("class='photo'") == PHOTOS  # the killed run's thumbnails kept, its last rows scored again
    assert not report.with_name(".gallery.partial").exists()


def test_ctrl_c_then_resume_scores_a_changed_file_again(bundle: Path, tmp_path: Path) -> None:
    photos = _library(tmp_path / "photos", 600)
    jsonl, table = tmp_path / "scores.jsonl", tmp_path / "scores.csv"
    args = ["--source", str(photos), "--model", str(bundle), "--headless", "--jsonl", str(jsonl), "--csv", str(table),
            "--batch", "2", "--decode-threads", "1"]
    first = _start(args)
    _wait_for_rows(jsonl, 60, first)
    first.send_signal(signal.SIGINT)
    _, stderr = first.communicate(timeout=60)
    assert first.returncode == 0 and "interrupted (Ctrl-C)" in stderr
    rows, _ = _rows(jsonl, table)
    changed = rows[3]["file"]
    os.unlink(photos / changed)  # replaced by another photo: another size and time
    (photos / changed).write_bytes((tmp_path / "originals" / "img_007.jpg").read_bytes())
    (photos / "new.jpg").write_bytes((tmp_path / "originals" / "img_001.jpg").read_bytes())  # added since

    resumed = subprocess.run(RUN + args + ["--resume"], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "1 file(s) changed since" in resumed.stderr, resumed.stderr[:400]
    rows, records = _rows(jsonl, table)
    assert sorted(r["file"] for r in rows) == sorted([f"p{i:05d}.jpg" for i in range(600)] + ["new.jpg"])
    assert [r["file"] for r in records] == [r["file"] for r in rows]  # both outputs agree, row for row
    again = next(r for r in rows if r["file"] == changed)
    assert again["bytes"] == (photos / changed).stat().st_size and again["mtime_ns"] == (photos / changed).stat().st_mtime_ns
    finished = subprocess.run(RUN + args + ["--resume"], capture_output=True, text=True, timeout=300)  # nothing left to do
    assert "601 file(s) already scored" in finished.stderr and jsonl.read_text().count("\n") == 601
    assert finished.returncode == 0, finished.stderr
