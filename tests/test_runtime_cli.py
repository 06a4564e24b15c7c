"""memgaze-run end to end in subprocesses: the acceptance run without torch/onnx, one-line errors, the MJPEG page in Chromium."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import pytest

from memgaze.runtime.mjpeg import MjpegServer
from memgaze.runtime.sinks import encode_jpeg
from runtime_fixtures import make_bundle, make_clip, rtsp_server, synthetic_frame

RUN = [str(Path(sys.executable).with_name("memgaze-run"))]
BLOCKER = '''
import atexit, os, sys

class _NoTorchNoOnnx:
    """Makes `import torch` and `import onnx` fail, as on a Jetson without them."""

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "onnx"):
            raise ImportError(f"{name} is blocked: the runtime must not import it")
        return None

sys.meta_path.insert(0, _NoTorchNoOnnx())

@atexit.register
def _report():
    with open(os.environ["MEMGAZE_MODULES_REPORT"], "w") as handle:
        handle.write(" ".join(sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "onnx"))))
'''


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_bundle(tmp_path_factory.mktemp("bundle"), size=64, personalized=True)


def run_cli(args: list[str], env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("OPENCV_")}  # the CLI must quiet OpenCV itself
    return subprocess.run(RUN + args, capture_output=True, text=True, timeout=timeout, env={**base, **(env or {})})


def test_acceptance_clip_to_jsonl_without_torch_or_onnx(bundle: Path, tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "clip.mp4", frames=120, size=96)
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(BLOCKER)
    report = tmp_path / "modules.txt"
    env = {"PYTHONPATH": str(blocker), "MEMGAZE_MODULES_REPORT": str(report)}
    probe = subprocess.run([sys.executable, "-c", "import torch"], capture_output=True, text=True, env={**os.environ, **env})
    assert probe.returncode != 0 and "blocked" in probe.stderr  # the blocker really works
    out = tmp_path / "out.jsonl"
    result = run_cli(
        ["--source", str(clip), "--model", str(bundle), "--backend", "onnxruntime", "--headless",
         "--jsonl", str(out), "--max-frames", "100", "--user", "alice"],
        env,
    )
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) >= 90
    assert all(0.0 <= r["score"] <= 1.0 for r in records)
    assert report.read_text() == ""  # after the full run: neither torch nor onnx in sys.modules
    assert "100 frames" in result.stderr and "p99" in result.stderr


def test_missing_camera_is_one_line(bundle: Path) -> None:
    result = run_cli(["--camera", "7", "--model", str(bundle), "--headless"])
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: no camera at index 7") and "--source" in lines[0]


@pytest.mark.parametrize(
    ("change", "message"),
    [("tamper", "does not match the sha256"), ("missing", "does not exist"), ("user", "knows: generic, alice, bob")],
)
def test_bad_bundle_or_user_is_one_line(bundle: Path, tmp_path: Path, change: str, message: str) -> None:
    folder = Path(shutil.copytree(bundle, tmp_path / "b"))
    args = ["--source", str(tmp_path), "--headless", "--model", str(folder)]
    if change == "tamper":
        with open(folder / "model.onnx", "ab") as handle:
            handle.write(b"\0")
    elif change == "missing":
        args[-1] = str(tmp_path / "no-bundle")
    else:
        args += ["--user", "carol"]
    result = run_cli(args)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr, result.stderr


def _fake_camera() -> tuple[MjpegServer, threading.Event]:
    """An MJPEG 'IP camera' on localhost, for a live source that needs no hardware."""
    server, stop = MjpegServer("127.0.0.1", 0), threading.Event()

    def pump() -> None:
        index = 0
        while not stop.is_set():
            server.publish(encode_jpeg(synthetic_frame(index, 96)))
            index += 1
            time.sleep(0.02)

    threading.Thread(target=pump, daemon=True).start()
    return server, stop


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Chromium is not installed (apt-get install chromium)")
def test_mjpeg_preview_loads_in_headless_chromium(bundle: Path, tmp_path: Path) -> None:
    camera, stop = _fake_camera()
    process = subprocess.Popen(
        RUN + ["--source", f"{camera.url}stream.mjpg", "--model", str(bundle), "--headless", "--serve", "127.0.0.1:0"],
        stderr=subprocess.PIPE, text=True,
    )
    try:
        assert process.stderr is not None
        url = None
        deadline = time.monotonic() + 60
        while url is None and time.monotonic() < deadline:
            line = process.stderr.readline()
            assert line, "memgaze-run ended before serving"
            if match := re.search(r"preview at (http://\S+)", line):
                url = match.group(1)
        assert url is not None
        profile = tempfile.mkdtemp(dir=tmp_path)
        browser = subprocess.run(
            ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", "--window-size=640,480", "--virtual-time-budget=5000", "--dump-dom", url],
            capture_output=True, text=True, timeout=90,
        )
        # The page's onload handler puts the decoded image size into the title: the stream delivered a frame.
        assert "<title>memgaze 96x96</title>" in browser.stdout, browser.stdout[:500]
        assert 'src="/stream.mjpg"' in browser.stdout
        process.send_signal(signal.SIGTERM)
        _, rest = process.communicate(timeout=30)
        assert process.returncode == 0 and "interrupted" in rest and "p50" in rest
    finally:
        if process.poll() is None:
            process.kill()
        stop.set()
        camera.close()


def test_folder_to_stdout_with_calibration_frames(bundle: Path, tmp_path: Path) -> None:
    from runtime_fixtures import make_folder

    folder = make_folder(tmp_path / "imgs", frames=5, size=64, corrupt=(1,))
    calib = tmp_path / "calib"
    result = run_cli(["--source", str(folder), "--model", str(bundle), "--headless", "--jsonl", "-",
                      "--save-calib", str(calib), "--every", "2", "--precision", "fp32"])
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]  # stdout holds only the JSON lines
    assert [r["file"] for r in records] == ["img_000.jpg", "img_001.jpg", "img_002.jpg", "img_003.jpg", "img_004.jpg"]
    assert [r["file"] for r in records if r.get("error")] == ["img_001.jpg"]  # a row with its error, never a score
    assert "undecodable 1 (img_001.jpg)" in result.stderr
    assert sorted(p.name for p in calib.iterdir()) == ["frame_0000000.jpg", "frame_0000002.jpg"]


def test_several_sources_as_json_lines_with_source_ids(bundle: Path, tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "clip.mp4", frames=6, size=96)
    short = make_clip(tmp_path / "short.mp4", frames=3, size=64)
    proc = run_cli(["--source", str(clip), "--source", str(short), "--model", str(bundle), "--headless", "--jsonl", "-"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    records = [json.loads(line) for line in proc.stdout.splitlines()]
    # files are scored in order, source after source, each row naming its file and frame
    assert [(r["source"], r["file"], r["frame"]) for r in records] == (
        [(0, "clip.mp4", i) for i in range(6)] + [(1, "short.mp4", i) for i in range(3)])
    assert "[0] file" in proc.stderr and "[1] file" in proc.stderr


@pytest.mark.parametrize("program", ["memgaze-run", "memgaze-train", "memgaze-export", "memgaze-bench", "memgaze-engine", "memgaze-ray"])
def test_every_cli_has_version(program: str) -> None:
    from memgaze import __version__

    proc = subprocess.run([str(Path(sys.executable).with_name(program)), "--version"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == f"{program} {__version__}"


def test_csi_source_without_gstreamer_is_one_line(bundle: Path) -> None:
    from memgaze.cv2_build import has_gstreamer

    if has_gstreamer():
        pytest.skip(f"this cv2 {cv2.__version__} has GStreamer")
    proc = run_cli(["--source", "csi://0", "--model", str(bundle), "--headless"])
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and "pip uninstall opencv-python-headless" in lines[0]


@pytest.mark.parametrize(
    ("target", "message"),
    [("missing/x.mp4", "missing does not exist"), ("clip.mp4/x.mp4", "clip.mp4 is not a folder"),
     ("x.unknown", "OpenCV cannot write video")],
)
def test_unwritable_save_video_is_one_line_before_scoring(bundle: Path, tmp_path: Path, target: str, message: str) -> None:
    clip = make_clip(tmp_path / "clip.mp4", frames=3, size=64)
    before = sorted(tmp_path.iterdir())
    proc = run_cli(["--source", str(clip), "--model", str(bundle), "--headless", "--save-video", str(tmp_path / target)])
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ") and message in lines[0] and "Traceback" not in proc.stderr
    assert sorted(tmp_path.iterdir()) == before  # no trial or partial file left behind


def test_save_video_writes_the_annotated_clip(bundle: Path, tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "clip.mp4", frames=5, size=64)
    out = tmp_path / "out.mp4"
    proc = run_cli(["--source", str(clip), "--model", str(bundle), "--headless", "--save-video", str(out)])
    assert proc.returncode == 0, proc.stderr
    video = cv2.VideoCapture(str(out))
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == 5 and int(video.get(cv2.CAP_PROP_FRAME_WIDTH)) == 64
    video.release()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_rtsp_transport_udp_reads_a_udp_only_server(bundle: Path) -> None:
    with rtsp_server("udp") as url:
        base = ["--source", url, "--model", str(bundle), "--headless", "--max-frames", "3"]
        proc = run_cli([*base, "--jsonl", "-", "--rtsp-transport", "udp"])
        assert proc.returncode == 0, proc.stderr
        assert [json.loads(line)["source"] for line in proc.stdout.splitlines()] == [0, 0, 0]
        refused = run_cli([*base, "--rtsp-transport", "tcp"])
    lines = refused.stderr.strip().splitlines()
    assert refused.returncode == 2 and len(lines) == 1 and f"could not open url {url} with RTP over tcp" in lines[0], refused.stderr


def test_unknown_rtsp_transport_is_one_line(bundle: Path) -> None:
    proc = run_cli(["--source", "rtsp://127.0.0.1:9/none", "--model", str(bundle), "--headless", "--rtsp-transport", "http"])
    assert proc.returncode == 2 and proc.stderr.strip() == "error: the RTSP transport is one of auto, tcp, udp, not 'http'"


def test_help_shows_its_bracketed_notes() -> None:
    """Rich renders help as markup, where "[the built-in model]" would be a tag and vanish: the notes are escaped."""
    proc = subprocess.run(RUN + ["--help"], capture_output=True, text=True, timeout=60, env={**os.environ, "COLUMNS": "300"})
    assert proc.returncode == 0
    assert "or a built-in model's name (memgaze-lite2-resmem) [the built-in model, memgaze-lite0-resmem]." in proc.stdout
    assert "auto | tcp | udp: how an rtsp:// source sends RTP" in proc.stdout
