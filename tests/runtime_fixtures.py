"""Test fixtures for the runtime: a real deploy bundle from a tiny torch model, and frames/clips to score.

The bundle follows the graph contract in docs/design.md ("The exported graph") (uint8 NHWC BGR ``image``, optional int64
``user``; ``score`` [N], ``heatmap`` [N,1,h,w]) and the manifest keys in docs/internals.md.
Only tests import this module (it needs torch, onnx and onnxruntime.quantization).
"""

from __future__ import annotations

import contextlib
import datetime
import json
import subprocess
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np
import pytest

from memgaze import __version__
from memgaze.gate_samples import SAMPLE_COUNT, Samples, write_samples
from memgaze.manifest import SCHEMA_VERSION, GateSamples, file_entries

USERS = ["generic", "alice", "bob"]


def _tiny_model(personalized: bool, users: int):
    import torch
    from torch import nn

    class Tiny(nn.Module):
        """uint8 BGR NHWC → (score [N], spatial-softmax heatmap [N,1,H/8,W/8])."""

        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
            self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))
            self.features = nn.Sequential(
                nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU(), nn.Conv2d(8, 8, 3, 2, 1), nn.ReLU(), nn.Conv2d(8, 8, 3, 2, 1), nn.ReLU()
            )
            self.embedding = nn.Embedding(users, 8) if personalized else None
            self.map_head = nn.Conv2d(8, 1, 1)
            self.score_head = nn.Linear(8, 1)

        def forward(self, image, user=None):
            x = image.float().permute(0, 3, 1, 2).flip(1) / 255.0  # cast first: no UINT8 tensor inside the graph
            x = self.features((x - self.mean) / self.std)
            if self.embedding is not None:
                x = x * (1.0 + self.embedding(user)[:, :, None, None])
            logits = self.map_head(x)
            n, _, h, w = logits.shape
            heatmap = torch.softmax(logits.reshape(n, -1), dim=1).reshape(n, 1, h, w)
            score = torch.sigmoid(self.score_head(x.mean(dim=(2, 3)))).reshape(n)
            return score, heatmap

    torch.manual_seed(0)
    return Tiny().eval()


def _export_onnx(model, path: Path, size: int, personalized: bool) -> None:
    import torch

    image = torch.randint(0, 256, (1, size, size, 3), dtype=torch.uint8)
    args = (image, torch.zeros(1, dtype=torch.int64)) if personalized else (image,)
    names = ["image", "user"] if personalized else ["image"]
    axes = {name: {0: "batch"} for name in [*names, "score", "heatmap"]}
    torch.onnx.export(
        model, args, str(path), input_names=names, output_names=["score", "heatmap"],
        dynamic_axes=axes, opset_version=17, dynamo=False,
    )


def _quantize_int8(fp32: Path, int8: Path, size: int, personalized: bool) -> None:
    """Static QDQ INT8 (symmetric activations, per-channel weights), calibrated on a few synthetic frames."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            frames = [synthetic_frame(i, size) for i in range(8)]
            self._items = iter(
                {"image": f[None], **({"user": np.zeros(1, np.int64)} if personalized else {})} for f in frames
            )

        def get_next(self):
            return next(self._items, None)

    quantize_static(
        str(fp32), str(int8), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
        extra_options={"ActivationSymmetric": True, "WeightSymmetric": True},
    )


def make_bundle(folder: Path, *, size: int = 64, personalized: bool = True, int8: bool = False, engines=()) -> Path:
    """Write a deploy bundle (model.onnx [+ model.int8.onnx] + manifest.json) into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    users = USERS if personalized else ["generic"]
    _export_onnx(_tiny_model(personalized, len(users)), folder / "model.onnx", size, personalized)
    models = {"fp32": "model.onnx"}
    if int8:
        _quantize_int8(folder / "model.onnx", folder / "model.int8.onnx", size, personalized)
        models["int8"] = "model.int8.onnx"
    map_size = [size // 8, size // 8]
    samples = _gate_samples(folder, size, personalized)
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "memgaze_version": __version__,
        "source_checkpoint": {"path": "tiny-test-model", "sha256": None},
        "input": {"height": size, "width": size, "layout": "NHWC", "dtype": "uint8", "color": "BGR"},
        "outputs": {"score": {"shape": ["N"]}, "heatmap": {"shape": ["N", 1, *map_size]}},
        "map_size": map_size,
        "users": users,
        "personalized": personalized,
        "precisions": sorted(models),
        "models": models,
        "engines": list(engines),
        "calibration": {},
        "accuracy": {},
        "gate_samples": {"file": samples.file, "frames": samples.frames, "source": samples.source},
        "files": file_entries(folder, [*models.values(), samples.file]),
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return folder


def _gate_samples(folder: Path, size: int, personalized: bool) -> GateSamples:
    """32 synthetic frames with the FP32 model's outputs (ONNX Runtime), as memgaze-export writes them."""
    import onnxruntime as ort

    frames = np.stack([synthetic_frame(i, size) for i in range(SAMPLE_COUNT)])
    users = np.arange(SAMPLE_COUNT, dtype=np.int64) % len(USERS) if personalized else None
    session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    feed = {"image": frames, **({"user": users} if users is not None else {})}
    scores, heatmaps = session.run(["score", "heatmap"], feed)
    return write_samples(folder, Samples(frames, users, scores, heatmaps), "synthetic test frames")


def synthetic_frame(index: int, size: int = 96) -> np.ndarray:
    """A deterministic BGR scene: gradient background, a moving bright disc and a rectangle."""
    ramp = np.linspace(0, 160, size, dtype=np.float32)
    frame = np.stack([np.tile(ramp, (size, 1)), np.tile(ramp[:, None], (1, size)), np.full((size, size), 60.0)], -1)
    frame = frame.astype(np.uint8)
    centre = (int(size * (0.2 + 0.6 * ((index * 7) % 20) / 20)), int(size * 0.5))
    cv2.circle(frame, centre, max(3, size // 8), (255, 255, 255), -1)
    cv2.rectangle(frame, (size // 10, size // 10), (size // 3, size // 4), (0, 0, 255), -1)
    return frame


def make_clip(path: Path, frames: int = 120, size: int = 96, fps: float = 30.0) -> Path:
    """An mp4v clip of ``frames`` synthetic frames."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), fps, (size, size))
    assert writer.isOpened(), "OpenCV cannot write mp4v here"
    for i in range(frames):
        writer.write(synthetic_frame(i, size))
    writer.release()
    return path


def make_folder(path: Path, frames: int = 6, size: int = 64, corrupt: tuple[int, ...] = ()) -> Path:
    """A folder of numbered JPEGs; the indices in ``corrupt`` are written as garbage bytes."""
    path.mkdir(parents=True, exist_ok=True)
    for i in range(frames):
        target = path / f"img_{i:03d}.jpg"
        if i in corrupt:
            target.write_bytes(b"this is not a jpeg")
        else:
            cv2.imwrite(str(target), synthetic_frame(i, size))
    return path


SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's, with python3-gi: the RTSP server runs on GStreamer, not on the venv
GST_RTSP_PACKAGES = "python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good"


@contextlib.contextmanager
def rtsp_server(transport: str) -> Iterator[str]:
    """A real RTSP server on 127.0.0.1 (tests/rtsp_server.py) sending RTP over ``transport`` (udp or tcp) only; yields
    its URL. Skips the test when Debian's GStreamer RTSP server is not installed."""
    probe = [SYSTEM_PYTHON, "-c", "import gi; gi.require_version('GstRtspServer', '1.0'); from gi.repository import GstRtspServer"]
    try:
        installed = subprocess.run(probe, capture_output=True, timeout=60).returncode == 0
    except FileNotFoundError:
        installed = False
    if not installed:
        pytest.skip(f"no GStreamer RTSP server for {SYSTEM_PYTHON} (apt-get install {GST_RTSP_PACKAGES})")
    server = subprocess.Popen([SYSTEM_PYTHON, str(Path(__file__).with_name("rtsp_server.py")), transport],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None and server.stderr is not None
        url = server.stdout.readline().strip()
        if not url:
            reason = server.stderr.read().strip()
            if server.wait(timeout=10) == 3:
                pytest.skip(reason)
            raise AssertionError(f"the RTSP server did not start: {reason}")
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)


def make_damaged(folder: Path, size: int = 96) -> dict[str, str]:
    """Damaged photos in ``folder``, as a copy interrupted or a card pulled out leaves them; returns file → the error
    its row must give (a part of it)."""
    folder.mkdir(parents=True, exist_ok=True)
    textured = cv2.add(cv2.resize(synthetic_frame(5, size), (4 * size, 3 * size)),
                       np.random.default_rng(0).integers(0, 40, (3 * size, 4 * size, 3), dtype=np.uint8))
    whole_jpeg = cv2.imencode(".jpg", textured, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()
    whole_png = cv2.imencode(".png", synthetic_frame(6, size))[1].tobytes()
    (folder / "empty.png").write_bytes(b"")
    (folder / "cut.jpg").write_bytes(whole_jpeg[: len(whole_jpeg) // 2])  # OpenCV decodes it, grey below the cut
    (folder / "cut.png").write_bytes(whole_png[: len(whole_png) * 2 // 3])
    (folder / "notes.jpg").write_bytes(b"this is not a jpeg")
    return {"empty.png": "empty file", "cut.jpg": "truncated JPEG", "cut.png": "truncated PNG", "notes.jpg": "cannot decode"}
