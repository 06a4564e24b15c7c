"""memgaze.runtime in-process: bundle, ONNX Runtime backend, TensorRT plan matching, sources, capture, pipeline, sinks."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np
import pytest

from memgaze.errors import MemgazeError
from memgaze.manifest import file_entries
from memgaze.media import resize_frame
from memgaze.runtime.backends import open_backend
from memgaze.runtime.backends.onnxruntime_backend import SPIN_KEY, OnnxRuntimeBackend, choose_providers
from memgaze.runtime.backends.tensorrt_backend import select_engine
from memgaze.runtime.bundle import load_bundle
from memgaze.runtime.capture import Capture, ReconnectPolicy
from memgaze.runtime.mjpeg import MjpegServer, parse_host_port
from memgaze.runtime.overlay import annotate
from memgaze.runtime.pipeline import Pipeline, Stream, batch_of
from memgaze.runtime.prediction import heatmap_peak
from memgaze.runtime.sinks import CalibSink, JsonlSink, VideoSink, WindowSink, encode_jpeg
from memgaze.runtime.sources import (
    FFMPEG_OPTIONS_ENV, CaptureOptions, FrameSource, SourceLost, SourceSpec, VideoCaptureSource, capture_wh, csi_pipeline,
    ffmpeg_capture_options, open_source, parse_source, source_spec,
)
from memgaze.runtime.timing import StageTimes
from memgaze.trt.fit import Machine
from runtime_fixtures import USERS, make_bundle, make_folder, rtsp_server, synthetic_frame

SIZE = 64


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_bundle(tmp_path_factory.mktemp("bundle"), size=SIZE, personalized=True, int8=True)


@pytest.fixture(scope="module")
def bundle(bundle_dir: Path):
    return load_bundle(bundle_dir)


def frames(count: int, size: int = SIZE) -> np.ndarray:
    return np.stack([synthetic_frame(i, size) for i in range(count)])


# --- bundle -------------------------------------------------------------------------------------


def test_bundle_reads_manifest(bundle) -> None:
    assert bundle.input_size == (SIZE, SIZE)
    assert bundle.map_size == (SIZE // 8, SIZE // 8)
    assert bundle.onnx_precisions == ["int8", "fp32"]
    assert bundle.onnx_model(None)[1] == "int8"
    assert bundle.user_index("bob") == USERS.index("bob")
    assert bundle.user_index(None) == 0
    with pytest.raises(MemgazeError, match="knows: generic, alice, bob"):
        bundle.user_index("carol")
    with pytest.raises(MemgazeError, match="no fp16 ONNX model"):
        bundle.onnx_model("fp16")


def test_bundle_with_wrong_checksum_is_refused(bundle_dir: Path, tmp_path: Path) -> None:
    copy = Path(shutil.copytree(bundle_dir, tmp_path / "b"))
    data = bytearray((copy / "model.onnx").read_bytes())
    data[-1] ^= 0xFF
    (copy / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(MemgazeError, match="does not match the sha256"):
        load_bundle(copy)
    with pytest.raises(MemgazeError, match="does not exist"):
        load_bundle(tmp_path / "missing")


# --- backends -----------------------------------------------------------------------------------


def test_onnxruntime_fp32_and_int8_agree(bundle) -> None:
    batch = frames(3)
    with OnnxRuntimeBackend(bundle, "fp32", threads=1) as fp32, OnnxRuntimeBackend(bundle, "int8", threads=1) as int8:
        s32, h32 = fp32.infer(batch)
        s8, h8 = int8.infer(batch)
    assert s32.shape == (3,) and h32.shape == (3, 1, SIZE // 8, SIZE // 8)
    assert np.all((s32 >= 0) & (s32 <= 1)) and np.all((s8 >= 0) & (s8 <= 1))
    np.testing.assert_allclose(h32.sum(axis=(1, 2, 3)), 1.0, atol=1e-4)
    assert np.max(np.abs(s32 - s8)) < 0.03  # INT8 tolerance on a [0, 1] score
    assert np.max(np.abs(h32 - h8)) < 0.25 * h32.max()


def test_cpu_session_loads_the_onnxruntime_cpu_int8_model(bundle_dir: Path, tmp_path: Path) -> None:
    copy = Path(shutil.copytree(bundle_dir, tmp_path / "b"))
    shutil.copyfile(copy / "model.int8.onnx", copy / "model.int8.ort.onnx")
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["onnxruntime_cpu"] = {"int8": "model.int8.ort.onnx"}
    manifest["files"] = file_entries(copy, [*manifest["models"].values(), "model.int8.ort.onnx"])
    (copy / "manifest.json").write_text(json.dumps(manifest))
    cpu_bundle = load_bundle(copy)
    assert cpu_bundle.onnx_model("int8", cpu=True) == (copy / "model.int8.ort.onnx", "int8")
    assert cpu_bundle.onnx_model("int8")[0].name == "model.int8.onnx"  # GPU providers take the Q/DQ model
    assert cpu_bundle.onnx_model("fp32", cpu=True)[0].name == "model.onnx"
    with open_backend(cpu_bundle, "onnxruntime", providers=["cpu"]) as backend:
        assert (backend.precision, backend.model_file) == ("int8", "model.int8.ort.onnx")
        assert "model.int8.ort.onnx" in backend.describe()
    with OnnxRuntimeBackend(load_bundle(bundle_dir), "int8", providers=["cpu"]) as old:  # a bundle without one
        assert old.model_file == "model.int8.onnx"


def test_onnxruntime_io_binding_batches_and_users(bundle) -> None:
    with OnnxRuntimeBackend(bundle, "fp32", threads=1) as backend:
        # idle intra-op threads must not spin: the capture threads share the cores
        assert backend._session.get_session_options().get_session_config_entry(SPIN_KEY) == "0"
        assert backend.input_size == (SIZE, SIZE)
        batch = frames(2)
        scores, maps = backend.infer(batch, np.array([0, 0]))
        one_score, one_map = backend.infer(batch[1:], np.array([0]))  # rebinding for a new batch size
        assert one_score.shape == (1,)
        np.testing.assert_allclose(one_score[0], scores[1], rtol=1e-5)
        np.testing.assert_allclose(one_map[0], maps[1], rtol=1e-4, atol=1e-6)
        _, alice = backend.infer(batch[:1], np.array([USERS.index("alice")]))
        _, bob = backend.infer(batch[:1], np.array([USERS.index("bob")]))
        assert not np.allclose(alice, bob)  # the user input conditions the heatmap


def test_provider_choice() -> None:
    chosen = choose_providers()
    assert chosen[-1] == "CPUExecutionProvider"
    assert choose_providers(["cpu"]) == ["CPUExecutionProvider"]
    with pytest.raises(MemgazeError, match="not available here"):
        choose_providers(["NoSuchExecutionProvider"])


def test_auto_backend_falls_back_to_onnxruntime(bundle, tmp_path: Path) -> None:
    with open_backend(bundle, "auto") as backend:
        assert (backend.name, backend.precision) == ("onnxruntime", "int8")
    fp32_only = load_bundle(make_bundle(tmp_path / "fp32", size=32, personalized=False))
    with open_backend(fp32_only, "auto") as backend:
        assert backend.precision == "fp32"
        scores, _ = backend.infer(frames(1, 32))
        assert 0 <= scores[0] <= 1
    with pytest.raises(MemgazeError, match="--backend tensorrt needs tensorrt"):
        open_backend(bundle, "tensorrt")
    with pytest.raises(MemgazeError, match="unknown backend"):
        open_backend(bundle, "openvino")


def test_tensorrt_plan_selection(bundle_dir: Path, tmp_path: Path) -> None:
    here = Machine("8.7", "10.3.0", gpu="Orin")
    good = {"file": "model.orin.int8.plan", "precision": "int8", "gpu": "Orin (nvgpu)", "compute_capability": [8, 7], "tensorrt": "10.3.0"}
    other_gpu = dict(good, file="model.a100.plan", gpu="NVIDIA A100", compute_capability="8.0")
    old_trt = dict(good, file="model.old.plan", tensorrt="8.6.1")
    fp32 = dict(good, file="model.fp32.plan", precision="fp32")
    folder = Path(shutil.copytree(bundle_dir, tmp_path / "b"))
    manifest = json.loads((folder / "manifest.json").read_text())

    def with_engines(*engines: dict) -> object:
        manifest["engines"] = list(engines)
        (folder / "manifest.json").write_text(json.dumps(manifest))
        return load_bundle(folder)

    entry, reasons = select_engine(with_engines(other_gpu, fp32, old_trt, good), None, here)
    assert entry is not None and entry.file == good["file"] and reasons == []  # int8 before fp32; the GPU's name is not compared
    entry, reasons = select_engine(with_engines(other_gpu, fp32, old_trt, good), "fp16", here)
    assert entry is None and reasons == []
    mixed = select_engine(with_engines(dict(good, precision="int8+fp16")), "fp16", here)[0]
    assert mixed is not None and mixed.precisions() == ["int8", "fp16"]
    entry, reasons = select_engine(with_engines(other_gpu, old_trt), None, here)
    assert entry is None and len(reasons) == 2 and "compute capability 8.0" in reasons[0] and "TensorRT 8.6.1" in reasons[1]


# --- timing, pre/post, overlay --------------------------------------------------------------------


def test_stage_times_ring_and_percentiles() -> None:
    times = StageTimes(("infer",), capacity=100)
    for value in range(1, 201):  # the first 100 are overwritten
        times.add("infer", value / 1000.0)
    assert times.samples("infer").size == 100
    p50, p99 = times.percentiles_ms("infer")
    assert p50 == pytest.approx(150.5) and p99 == pytest.approx(199.01)
    with times.measure("infer"):
        time.sleep(0.002)
    assert np.isnan(StageTimes(("x",)).percentiles_ms("x")[0])


def test_batch_peak_and_overlay() -> None:
    frame = synthetic_frame(0, 96)[:, :80]
    batch = batch_of([resize_frame(frame, (SIZE, 48))])
    assert batch.shape == (1, SIZE, 48, 3) and batch.dtype == np.uint8
    heatmap = np.zeros((8, 8), np.float32)
    heatmap[2, 5] = 1.0
    assert heatmap_peak(heatmap, (64, 128, 3)) == (88, 20)
    out = annotate(frame, heatmap, 0.7, (40, 40), 12.5)
    assert out.shape == frame.shape and not np.array_equal(out, frame)


# --- sources and capture --------------------------------------------------------------------------


def test_parse_source(tmp_path: Path) -> None:
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"")
    assert parse_source(None, None) == SourceSpec("camera", 0)
    assert parse_source(3, None) == SourceSpec("camera", 3)
    assert parse_source(None, str(clip)).kind == "file"
    assert parse_source(None, str(tmp_path)).kind == "folder"
    assert parse_source(None, "rtsp://cam/stream").live
    assert parse_source(None, "videotestsrc ! appsink drop=1 max-buffers=1").kind == "pipeline"
    with pytest.raises(MemgazeError, match="not a file, a folder"):
        parse_source(None, str(tmp_path / "nope.mp4"))
    with pytest.raises(MemgazeError, match="either --camera or --source"):
        parse_source(1, str(clip))
    with pytest.raises(MemgazeError, match="no camera at index 7"):
        open_source(SourceSpec("camera", 7))


def test_jetson_inference_uris_and_capture_size(monkeypatch: pytest.MonkeyPatch) -> None:
    from memgaze.runtime import sources

    assert source_spec("csi://1") == SourceSpec("csi", 1) and source_spec("csi://1").live
    assert source_spec("v4l2:///dev/video2") == SourceSpec("camera", "/dev/video2")
    assert source_spec("/dev/video0") == SourceSpec("camera", "/dev/video0")
    assert source_spec(4) == SourceSpec("camera", 4)
    for bad, message in [("csi://front", "csi://N"), ("v4l2://video0", "v4l2:///dev/videoN")]:
        with pytest.raises(MemgazeError, match=message):
            source_spec(bad)
    # Cameras are asked for the smallest common mode that covers the model, or exactly what was given.
    assert capture_wh(CaptureOptions(), (128, 128)) == (320, 240)
    assert capture_wh(CaptureOptions(), (384, 384)) == (640, 480)
    assert capture_wh(CaptureOptions(), (800, 800)) == (1920, 1080)
    assert capture_wh(CaptureOptions(width=800, height=600), (128, 128)) == (800, 600)
    pipeline = csi_pipeline(1, (320, 240), 60.0)
    assert pipeline.startswith("nvarguscamerasrc sensor-id=1 ! video/x-raw(memory:NVMM),width=1280,height=720,framerate=60000/1000")
    assert "! nvvidconv ! video/x-raw,width=320,height=240,format=BGRx !" in pipeline and "appsink drop=1 max-buffers=1" in pipeline
    assert "width=1920,height=1080" in csi_pipeline(0, (1920, 1080), 30.0).split("!")[1]
    # Without GStreamer in this cv2 (pip's wheels): one line naming the fix, before trying to open anything.
    monkeypatch.setattr(sources, "has_gstreamer", lambda: False)
    for spec in (SourceSpec("csi", 0), SourceSpec("pipeline", "videotestsrc ! appsink")):
        with pytest.raises(MemgazeError, match="needs OpenCV built with GStreamer.*pip uninstall opencv-python-headless") as caught:
            open_source(spec)
        assert "\n" not in str(caught.value)


@pytest.fixture(scope="module")
def rtsp_urls() -> Iterator[dict[str, str]]:
    """Two real RTSP servers on 127.0.0.1: one sends RTP over UDP only, the other over TCP only."""
    with contextlib.ExitStack() as stack:
        yield {transport: stack.enter_context(rtsp_server(transport)) for transport in ("udp", "tcp")}


def _rtsp_frame(url: str, transport: str) -> np.ndarray | None:
    """A frame of ``url`` read over ``transport``; None when the source cannot be opened."""
    source = VideoCaptureSource(SourceSpec("url", url), rtsp_transport=transport)
    try:
        source.open()
    except SourceLost:
        return None
    try:
        return source.read()
    finally:
        source.close()


@pytest.mark.parametrize("server", ["udp", "tcp"])
def test_rtsp_transport_reaches_only_a_server_that_offers_it(rtsp_urls: dict[str, str], server: str) -> None:
    for transport in ("auto", "tcp", "udp"):
        frame = _rtsp_frame(rtsp_urls[server], transport)
        if transport in ("auto", server):  # auto: OpenCV asks for TCP and falls back to UDP
            assert frame is not None and frame.shape == (64, 64, 3), (server, transport)
        else:
            assert frame is None, (server, transport)
    with pytest.raises(MemgazeError, match="RTP over tcp") as caught:
        open_source(SourceSpec("url", rtsp_urls["udp"]), rtsp_transport="tcp")
    assert "\n" not in str(caught.value)


def test_rtsp_transport_merges_with_the_users_ffmpeg_options(
    rtsp_urls: dict[str, str], monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str],
) -> None:
    user = "max_delay;500000|rtsp_transport;tcp"
    assert ffmpeg_capture_options(None, "udp") == "rtsp_transport;udp"
    assert ffmpeg_capture_options(user, "udp") == "max_delay;500000|rtsp_transport;udp"
    assert ffmpeg_capture_options(user, "auto") == user and ffmpeg_capture_options(None, "auto") is None
    monkeypatch.setenv(FFMPEG_OPTIONS_ENV, user)
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_DEBUG)
    try:
        frame = _rtsp_frame(rtsp_urls["udp"], "udp")  # the user's tcp alone could not reach this server
    finally:
        cv2.utils.logging.setLogLevel(level)
    assert frame is not None
    # What OpenCV's FFmpeg backend read at the open; the user's value is back afterwards.
    logged = capfd.readouterr()
    assert "capture options from environment: max_delay;500000|rtsp_transport;udp" in logged.out + logged.err
    assert os.environ[FFMPEG_OPTIONS_ENV] == user
    monkeypatch.delenv(FFMPEG_OPTIONS_ENV)
    assert _rtsp_frame(rtsp_urls["udp"], "udp") is not None and FFMPEG_OPTIONS_ENV not in os.environ
    with pytest.raises(MemgazeError, match="one of auto, tcp, udp, not 'sctp'"):
        CaptureOptions(rtsp_transport="sctp")


def test_rtsp_opens_in_parallel_threads_keep_their_transport(rtsp_urls: dict[str, str]) -> None:
    """Capture threads reopen sources at once: each open must see its own transport in the shared environment."""
    results: dict[tuple[str, int], bool] = {}

    def read(transport: str, round_: int) -> None:
        results[transport, round_] = _rtsp_frame(rtsp_urls[transport], transport) is not None

    threads = [threading.Thread(target=read, args=(t, r)) for r in range(3) for t in ("udp", "tcp")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert results == {(t, r): True for r in range(3) for t in ("udp", "tcp")}


def test_size_conventions_on_a_non_square_model(tmp_path: Path) -> None:
    """``*_hw`` is (height, width), ``*_wh`` (width, height): a non-square size tells a swap."""
    from memgaze.media import read_image_for
    from memgaze.runtime.overlay import colorize

    model_hw = (300, 400)
    assert capture_wh(CaptureOptions(), model_hw) == (640, 360)  # 640 >= 400 wide, 360 >= 300 high
    frame = np.zeros((720, 1280, 3), np.uint8)
    assert resize_frame(frame, model_hw).shape == (300, 400, 3)
    assert colorize(np.ones((4, 4), np.float32), (400, 300)).shape == (300, 400, 3)
    photo = tmp_path / "wide.jpg"
    cv2.imwrite(str(photo), frame)
    image, full_hw = read_image_for(photo, (150, 300))
    assert full_hw == (720, 1280) and image.shape[:2] == (360, 640)  # decoded at 1/2: still 2x the model


def _clip_with_a_wiped_frame(path: Path, frames: int = 20, wiped: int = 10) -> Path:
    """An MJPG AVI whose ``wiped``-th JPEG is overwritten with zeros (the decoder rejects it)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 30.0, (64, 64))
    for i in range(frames):
        writer.write(synthetic_frame(i, 64))
    writer.release()
    data = bytearray(path.read_bytes())
    starts = [i for i in range(len(data) - 1) if data[i] == 0xFF and data[i + 1] == 0xD8]
    assert len(starts) == frames, "MJPG AVI layout not as expected"
    data[starts[wiped]:starts[wiped + 1]] = bytes(starts[wiped + 1] - starts[wiped])
    path.write_bytes(data)
    return path


def test_undecodable_video_frames_are_skipped_and_counted(tmp_path: Path) -> None:
    clip = _clip_with_a_wiped_frame(tmp_path / "bad.avi")
    capture = Capture(open_source(parse_source(None, str(clip)))).start()
    indices = []
    while (frame := capture.get(timeout=5)) is not None:
        indices.append(frame.index)
    capture.stop()
    assert capture.undecodable >= 1
    assert len(indices) >= 15  # the frames after the bad one are still read
    assert capture.end_reason.startswith("end of")


def test_folder_is_read_in_order_and_bad_images_are_counted(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "imgs", frames=6, corrupt=(2,))
    capture = Capture(open_source(parse_source(None, str(folder)))).start()
    got = []
    while (frame := capture.get(timeout=5)) is not None:
        time.sleep(0.01)  # slower than the reader: a file source must still lose nothing
        got.append(frame.index)
    capture.stop()
    assert got == [0, 1, 2, 3, 4]
    assert (capture.undecodable, capture.dropped) == (1, 0)
    assert capture.end_reason.startswith("end of folder")


class CountingLiveSource(FrameSource):
    """A live source that makes numbered frames as fast as it can (no OpenCV involved)."""

    def __init__(self) -> None:
        super().__init__(SourceSpec("camera", 99))
        self.made = 0

    def read(self) -> np.ndarray:
        time.sleep(0.001)
        self.made += 1
        return np.full((4, 4, 3), self.made % 256, np.uint8)


def test_live_capture_keeps_only_the_newest_frame() -> None:
    capture = Capture(CountingLiveSource()).start()
    seen = []
    for _ in range(5):
        time.sleep(0.03)  # a slow consumer
        frame = capture.get(timeout=2)
        assert frame is not None
        seen.append(frame.index)
        assert capture.read - frame.index <= 4  # what we get is (nearly) the newest, never an old queued one
    capture.stop()
    assert seen == sorted(seen) and capture.dropped > 0
    # Every frame read was taken, dropped, or is one of at most two in flight (read, being resized) at the stop.
    assert 0 <= capture.read - len(seen) - capture.dropped <= 2


def _pump(server: MjpegServer, stop: threading.Event) -> None:
    index = 0
    while not stop.is_set():
        server.publish(encode_jpeg(synthetic_frame(index, 48)))
        index += 1
        time.sleep(0.01)


def _serve_camera(port: int = 0) -> tuple[MjpegServer, threading.Event]:
    server, stop = MjpegServer("127.0.0.1", port), threading.Event()
    threading.Thread(target=_pump, args=(server, stop), daemon=True).start()
    return server, stop


def test_http_stream_reconnects_then_gives_up() -> None:
    """A fake IP camera (our MJPEG server) goes away and comes back: real FFmpeg decoding through cv2."""
    server, stop = _serve_camera()
    port = server.address[1]
    source = VideoCaptureSource(parse_source(None, f"http://127.0.0.1:{port}/stream.mjpg"))
    source.open()
    capture = Capture(source, policy=ReconnectPolicy(attempts=3, base_delay=0.2, max_delay=0.4)).start()
    try:
        first = capture.get(timeout=5)
        assert first is not None and first.image.shape == (48, 48, 3)
        server.close()
        stop.set()
        server, stop = _serve_camera(port)  # back before the first retry
        deadline = time.monotonic() + 15
        while capture.reconnects == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert capture.reconnects == 1
        after = capture.get(timeout=5)
        assert after is not None and after.index > first.index
        server.close()
        stop.set()
        while capture.get(timeout=10) is not None:
            pass
        assert capture.ended and "gave up after 3 reconnect attempts" in capture.end_reason
    finally:
        stop.set()
        capture.stop()
        server.close()


# --- pipeline and sinks ---------------------------------------------------------------------------


def test_pipeline_writes_jsonl_video_and_calibration(bundle, tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "imgs", frames=7, size=80, corrupt=(3,))
    source = open_source(parse_source(None, str(folder)))
    sinks = [JsonlSink(str(tmp_path / "out.jsonl")), VideoSink(str(tmp_path / "out.mp4"), 10.0), CalibSink(str(tmp_path / "calib"), 2)]
    with open_backend(bundle, "onnxruntime", "fp32") as backend:
        summary = Pipeline(Stream(backend, [source], user=1), sinks).run()
    assert (summary.frames, summary.undecodable) == (6, 1)
    records = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [r["file"] for r in records] == [f"img_{i:03d}.jpg" for i in (0, 1, 2, 4, 5, 6)]  # each row names its photo
    assert all(set(r) == {"source", "file", "bytes", "mtime_ns", "t", "score", "peak", "latency_ms"} and r["source"] == 0
               for r in records)
    assert records[0]["bytes"] == (folder / "img_000.jpg").stat().st_size
    assert all(0 <= r["score"] <= 1 and 0 <= r["peak"][0] < 80 and r["latency_ms"] > 0 for r in records)
    video = cv2.VideoCapture(str(tmp_path / "out.mp4"))
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == 6 and int(video.get(cv2.CAP_PROP_FRAME_WIDTH)) == 80
    video.release()
    assert sorted(p.name for p in (tmp_path / "calib").iterdir()) == [f"frame_{i:07d}.jpg" for i in (0, 2, 4)]
    for stage in summary.timings.stages:
        assert summary.timings.samples(stage).size >= 6


def test_window_needs_a_display(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with pytest.raises(MemgazeError, match="--headless"):
        WindowSink()


def test_parse_host_port() -> None:
    assert parse_host_port("8080") == ("127.0.0.1", 8080)
    assert parse_host_port("0.0.0.0:9000") == ("0.0.0.0", 9000)
    with pytest.raises(MemgazeError):
        parse_host_port("localhost:http")
