"""memgaze.export parts that need no model: calibration frames, TensorRT cache/command, bundle, metrics."""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

import cv2
import numpy as np
import pytest

from memgaze.errors import MemgazeError
from memgaze.export.bundle import bundle_dir, check_output
from memgaze.export.calibration import FrameReader, evenly_spaced, frame_refs, load_calibration, split_refs
from memgaze.export.trt_cache import cache_text, decode_scale, encode_scale, read_calibration_cache, version_number
from memgaze.console import WarningCounter


def write_frames(folder: Path, images: int = 0, video_frames: int = 0, size: tuple[int, int] = (48, 64)) -> Path:
    """Small synthetic JPEGs and an MJPG video whose frames are distinguishable by brightness."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(images):
        cv2.imwrite(str(folder / f"img{i:03d}.jpg"), np.full((*size, 3), (i * 7) % 256, np.uint8))
    if video_frames:
        writer = cv2.VideoWriter(str(folder / "clip.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10, (size[1], size[0]))
        for i in range(video_frames):
            writer.write(np.full((*size, 3), 20 + i * 6, np.uint8))
        writer.release()
    return folder


def test_evenly_spaced_is_deterministic_and_spread() -> None:
    assert evenly_spaced(10, 20) == list(range(10))
    picks = evenly_spaced(100, 5)
    assert picks == [0, 25, 50, 74, 99] or picks == [0, 25, 50, 75, 99]
    assert evenly_spaced(100, 5) == picks


def test_split_is_disjoint_and_holds_out(tmp_path: Path) -> None:
    refs = frame_refs(write_frames(tmp_path / "c", images=12, video_frames=20), WarningCounter("t"))
    assert len(refs) == 32
    calib, held = split_refs(refs, count=16, held_out=8)
    assert len(calib) == 16 and len(held) == 8 and not set(calib) & set(held)
    small_calib, small_held = split_refs(refs[:10], count=100, held_out=8)
    assert not set(small_calib) & set(small_held) and len(small_held) == 2 and len(small_calib) == 8


def test_load_calibration_reads_images_and_video_frames(tmp_path: Path) -> None:
    folder = write_frames(tmp_path / "c", images=6, video_frames=10)
    cs = load_calibration(folder, (32, 40), count=12, held_out=4, min_frames=4)
    assert cs.frames.shape[1:] == (32, 40, 3) and cs.frames.dtype == np.uint8
    assert cs.summary["images"] == 6 and cs.summary["videos"] == 1 and cs.summary["available_frames"] == 16
    video = [n for n in cs.names + cs.held_out_names if n.startswith("clip.avi#")]
    assert len(video) == 10  # every video frame was used somewhere
    again = load_calibration(folder, (32, 40), count=12, held_out=4, min_frames=4)
    assert np.array_equal(cs.frames, again.frames) and cs.names == again.names


def test_calibration_bad_input(tmp_path: Path) -> None:
    with pytest.raises(MemgazeError, match="does not exist"):
        load_calibration(tmp_path / "missing", (32, 32))
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("x")
    with pytest.raises(MemgazeError, match="no image or video"):
        load_calibration(tmp_path / "empty", (32, 32))
    few = write_frames(tmp_path / "few", images=4)
    with pytest.raises(MemgazeError, match="at least 8"):
        load_calibration(few, (32, 32))
    bad = write_frames(tmp_path / "bad", images=3)
    for i in range(10):
        (bad / f"broken{i}.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(MemgazeError, match="at least 8 readable frames"):
        load_calibration(bad, (32, 32))


def test_frame_reader_batches_and_rewinds() -> None:
    frames = np.zeros((10, 8, 8, 3), np.uint8)
    reader = FrameReader(frames, np.arange(10, dtype=np.int64), batch=4)
    batches = list(iter(reader.get_next, None))
    assert [b["image"].shape[0] for b in batches] == [4, 4, 2] and batches[2]["user"].tolist() == [8, 9]
    reader.rewind()
    assert reader.get_next() is not None and len(reader) == 3


def test_trt_cache_format(tmp_path: Path) -> None:
    assert version_number("8.6.1") == 8601 and version_number("10.3.0") == 100300
    assert encode_scale(1.0) == "3f800000"
    assert struct.unpack(">f", bytes.fromhex(encode_scale(0.0123)))[0] == pytest.approx(0.0123)
    text = cache_text({"input.1": 0.5, "/conv/Relu_output_0": 0.03125}, "8.6.1")
    lines = text.splitlines()
    assert lines[0] == "TRT-8601-EntropyCalibration2"
    assert lines[1] == "input.1: 3f000000" and lines[2] == "/conv/Relu_output_0: 3d000000"
    path = tmp_path / "calibration.cache"
    path.write_text(text)
    header, scales = read_calibration_cache(path)
    assert header == lines[0] and scales == {"input.1": 0.5, "/conv/Relu_output_0": 0.03125}
    assert decode_scale("3d000000") == 0.03125


def test_bundle_is_atomic(tmp_path: Path) -> None:
    out = tmp_path / "deploy"
    with bundle_dir(out) as folder:
        (folder / "a.txt").write_text("first")
    assert (out / "a.txt").read_text() == "first"
    with pytest.raises(RuntimeError):
        with bundle_dir(out) as folder:
            (folder / "a.txt").write_text("half")
            (folder / "manifest.json").write_text(json.dumps({}))
            raise RuntimeError("crash mid-write")
    assert sorted(p.name for p in out.iterdir()) == ["a.txt"] and (out / "a.txt").read_text() == "first"
    assert [p.name for p in tmp_path.iterdir()] == ["deploy"]  # no temp folder left behind
    with pytest.raises(KeyboardInterrupt):
        with bundle_dir(tmp_path / "fresh") as folder:
            (folder / "model.onnx").write_bytes(b"x")
            raise KeyboardInterrupt
    assert not (tmp_path / "fresh").exists()


def test_unwritable_output(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(MemgazeError, match="cannot write the bundle"):
        check_output(blocker / "deploy")
    with pytest.raises(MemgazeError, match="not a folder"):
        check_output(blocker)


def test_the_default_calibration_frames_are_real_small_and_licensed() -> None:
    folder = Path(__file__).resolve().parent.parent / "calib_data"
    frames = sorted(p for p in folder.iterdir() if p.suffix == ".jpg")
    assert len(frames) >= 128 and sum(p.stat().st_size for p in folder.iterdir()) <= 10 * 2**20
    rows = dict(re.findall(r"^\| `([^`]+\.jpg)` \| `[^`]+` \| `[^`]+` \| (.+) \|$", (folder / "README.md").read_text(), re.MULTILINE))
    assert set(rows) == {p.name for p in frames} and all(licence.strip() for licence in rows.values())
    assert not [p for p in frames if p.name.startswith("demo_")]  # no synthetic frame left
    sizes = {cv2.imread(str(p)).shape[:2] for p in frames[::16]}
    assert all(max(size) <= 320 for size in sizes) and len(sizes) > 1  # small, and real photos keep their shapes
    calibration = load_calibration(folder, (64, 64))
    assert len(calibration.frames) == 128 and len(calibration.held_out) >= 32  # the gate judges on held-out frames
