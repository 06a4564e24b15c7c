"""Photo collections: folders (recursive), globs and lists of paths, rows naming their files, CSV, batched decoding on
several threads, the progress bar on a real terminal, and rows kept whole after Ctrl-C."""

from __future__ import annotations

import csv
import io
import json
import os
import pty
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from memgaze.errors import MemgazeError
from memgaze.media import UnreadableImage, decode_image_for, read_image_for
from memgaze.runtime.capture import CaptureGroup
from memgaze.runtime.collection import glob_root
from memgaze.runtime.reader import CollectionReader
from memgaze.runtime.sources import FrameSource, collection_items, open_source, source_spec
from runtime_fixtures import make_bundle, make_clip, make_folder, synthetic_frame

RUN = [str(Path(sys.executable).with_name("memgaze-run"))]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_bundle(tmp_path_factory.mktemp("bundle"), size=64, personalized=False)


@pytest.fixture
def library(tmp_path: Path) -> Path:
    """A photo library: 2024/06 (3 photos, one corrupt), 2024/07 (2), a top-level photo, a video, a hidden folder."""
    root = tmp_path / "library"
    make_folder(root / "2024" / "06", frames=3, size=120, corrupt=(1,))
    make_folder(root / "2024" / "07", frames=2, size=90)
    cv2.imwrite(str(root / "cover.png"), synthetic_frame(9, 100))
    (root / "clips").mkdir()
    make_clip(root / "clips" / "walk.mp4", frames=4, size=96, fps=20.0)
    make_folder(root / ".thumbnails", frames=2, size=32)  # a viewer's cache: never scored
    return root


def run_cli(args: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(RUN + args, capture_output=True, text=True, timeout=timeout)


NESTED = ["2024/06/img_000.jpg", "2024/06/img_001.jpg", "2024/06/img_002.jpg", "2024/07/img_000.jpg",
          "2024/07/img_001.jpg", "clips/walk.mp4", "cover.png"]


def test_folder_is_recursive_by_default_and_names_are_relative(library: Path) -> None:
    items = collection_items(source_spec(library))
    assert [item.name for item in items] == NESTED
    assert [item.video for item in items] == [False] * 5 + [True, False]
    assert [item.name for item in collection_items(source_spec(library, recursive=False))] == ["cover.png"]
    with pytest.raises(MemgazeError, match="--no-recursive"):
        collection_items(source_spec(library / "2024", recursive=False))


def test_glob_and_list_of_paths(library: Path, tmp_path: Path) -> None:
    pattern = str(library / "2024" / "**" / "*.jpg")
    spec = source_spec(pattern)
    assert spec.kind == "glob" and glob_root(pattern) == library / "2024"
    assert [item.name for item in collection_items(spec)] == ["06/img_000.jpg", "06/img_001.jpg", "06/img_002.jpg",
                                                                "07/img_000.jpg", "07/img_001.jpg"]
    listing = library / "picked.txt"
    listing.write_text(f"# my picks\n2024/07/img_001.jpg\n\n{library / 'cover.png'}\nmissing.jpg\n")
    spec = source_spec(listing)
    assert spec.kind == "list"
    items = collection_items(spec)
    assert [item.name for item in items] == ["2024/07/img_001.jpg", "cover.png", "missing.jpg"]  # in the list's order
    with pytest.raises(MemgazeError, match="no image or video file matches"):
        collection_items(source_spec(str(tmp_path / "*.jpg")))
    (tmp_path / "empty.txt").write_text("# nothing\n")
    with pytest.raises(MemgazeError, match="names no file"):
        collection_items(source_spec(tmp_path / "empty.txt"))


def test_decoding_bytes_gives_the_pixels_of_decoding_the_file(tmp_path: Path) -> None:
    photo = tmp_path / "photo.jpg"
    cv2.imwrite(str(photo), cv2.resize(synthetic_frame(3, 96), (1000, 700), interpolation=cv2.INTER_CUBIC))
    from_file, full = read_image_for(photo, (64, 64))
    from_bytes, full_bytes = decode_image_for(photo.read_bytes(), (64, 64))
    assert full == full_bytes == (700, 1000) and from_file.shape == (175, 250, 3)  # decoded at 1/4
    assert np.array_equal(from_file, from_bytes)
    with pytest.raises(UnreadableImage, match="cannot decode"):
        decode_image_for(b"not an image", (64, 64))


def test_run_writes_rows_that_name_files_as_json_lines_and_csv(bundle: Path, library: Path, tmp_path: Path) -> None:
    out, table = tmp_path / "scores.jsonl", tmp_path / "scores.csv"
    result = run_cli(["--source", str(library), "--model", str(bundle), "--headless", "--jsonl", str(out), "--csv", str(table)])
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    photos = [r["file"] for r in rows if "frame" not in r]
    assert photos == [name for name in NESTED if name != "clips/walk.mp4"]  # the unreadable photo has its row, in its place
    assert [r["error"] for r in rows if r["score"] is None] == ["cannot decode this file as an image"]
    frames = [r for r in rows if r["file"] == "clips/walk.mp4"]
    assert [(r["frame"], r["timestamp"]) for r in frames] == [(0, 0.0), (1, 0.05), (2, 0.1), (3, 0.15)]
    assert all(0 <= r["score"] <= 1 and r["source"] == 0 for r in rows if r["score"] is not None)
    # the unreadable photo is skipped, counted, and named in the summary
    assert "undecodable 1 (2024/06/img_001.jpg)" in result.stderr
    with open(table, newline="") as handle:
        records = list(csv.DictReader(handle))
    assert [r["file"] for r in records] == [r["file"] for r in rows]
    assert [float(r["score"] or "nan") for r in records] == pytest.approx([r["score"] or float("nan") for r in rows], nan_ok=True)
    assert [(r["peak_x"], r["peak_y"], r["error"]) for r in records if not r["score"]] == [("", "", rows[1]["error"])]
    assert records[0]["frame"] == "" and records[-2]["frame"] == "3"  # cover.png is last, the video's frames before it


def test_no_recursive_and_a_folder_without_photos_are_one_line(bundle: Path, library: Path) -> None:
    result = run_cli(["--source", str(library / "2024"), "--no-recursive", "--model", str(bundle), "--headless"])
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and "has no images or videos" in lines[0], result.stderr


def test_files_decode_on_several_threads_and_live_sources_keep_the_capture_path(bundle: Path, tmp_path: Path,
                                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import memgaze.runtime.reader as reader
    from memgaze.runtime.backends import open_backend
    from memgaze.runtime.bundle import load_bundle
    from memgaze.runtime.pipeline import Stream

    folder = make_folder(tmp_path / "imgs", frames=12, size=80)
    threads: set[str] = set()
    real = reader.read_image_for

    def slow_read(path: Path, size: tuple[int, int], **options: bool):  # the real decode, a little slower, noting its thread
        threads.add(threading.current_thread().name)
        time.sleep(0.02)
        return real(path, size, **options)

    monkeypatch.setattr(reader, "read_image_for", slow_read)
    with open_backend(load_bundle(bundle), "onnxruntime", "fp32") as backend:
        stream = Stream(backend, [open_source(source_spec(folder), model_hw=(64, 64))], batch=5, threads=3)
        assert isinstance(stream.group, CollectionReader)
        got = list(stream)
        assert [p.file for p in got] == [f"img_{i:03d}.jpg" for i in range(12)]  # in order, whatever thread decoded it
        assert len(threads) == 3 and all(name.startswith("memgaze-decode") for name in threads)
        assert stream.summary.timings.samples("infer").size == 3  # 5 + 5 + 2 per engine call
        live = Stream(backend, [FrameSource(source_spec("rtsp://127.0.0.1:9/stream"))], batch=5)  # never started
        assert isinstance(live.group, CaptureGroup)  # a live source keeps its newest-frame capture threads
        live.close()


def _read_until(fd: int, pattern: bytes, seconds: float) -> bytes:
    seen = b""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
            if pattern in seen:
                break
    return seen


def test_progress_bar_on_a_terminal_only(bundle: Path, tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "imgs", frames=7, size=80)
    args = RUN + ["--source", str(folder), "--model", str(bundle), "--headless"]
    primary, secondary = pty.openpty()
    process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=secondary,
                               env={**os.environ, "COLUMNS": "120", "TERM": "xterm"})
    os.close(secondary)
    try:
        shown = _read_until(primary, b"undecodable", 120).decode(errors="replace")
    finally:
        process.wait(timeout=60)
        os.close(primary)
    assert process.returncode == 0
    assert "7/7" in shown and "/s" in shown, shown[-2000:]  # done / total and the rate
    piped = run_cli(args[1:])
    assert piped.returncode == 0 and "7/7" not in piped.stderr  # stderr is not a terminal: no bar
    quiet = subprocess.Popen(args + ["--quiet"], stdout=subprocess.DEVNULL, stderr=(pair := pty.openpty())[1])
    os.close(pair[1])
    try:
        text = _read_until(pair[0], b"undecodable", 120).decode(errors="replace")
    finally:
        quiet.wait(timeout=60)
        os.close(pair[0])
    assert quiet.returncode == 0 and "7/7" not in text and "p50" not in text  # --quiet: no bar, no stage table


def test_rows_are_whole_after_ctrl_c(bundle: Path, tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "imgs", frames=4, size=80)
    listing = tmp_path / "many.txt"
    listing.write_text("\n".join(f"imgs/img_{i % 4:03d}.jpg" for i in range(20000)) + "\n")  # a long run
    out, table, report = tmp_path / "scores.jsonl", tmp_path / "scores.csv", tmp_path / "gallery"
    process = subprocess.Popen(RUN + ["--source", str(listing), "--model", str(bundle), "--headless", "--jsonl", str(out),
                                      "--csv", str(table), "--report", str(report), "--batch", "2"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               # as from a terminal: a shell's background job (a CI step?) would pass SIGINT on ignored
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not out.exists() or out.read_text().count("\n") < 50):
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0 and "interrupted (Ctrl-C)" in stderr, stderr[-2000:]  # the summary, then exit 0
    text = out.read_text()
    assert text.endswith("\n")
    rows = [json.loads(line) for line in text.splitlines()]  # every line whole
    assert 50 <= len(rows) < 20000 and folder.is_dir()
    records = list(csv.DictReader(io.StringIO(table.read_text())))
    assert [r["file"] for r in records] == [r["file"] for r in rows]
    page = (report / "index.html").read_text()
    assert page.count("class='photo'") == len(rows)  # the gallery of what was scored
