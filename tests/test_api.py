"""The Python API on a real bundle (ONNX Runtime): predict on one image and a list, stream over a video and
several sources (batched, ordered, tagged), bad inputs as one-line errors, and a light ``import memgaze``."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

import memgaze
from memgaze import builtin as builtin_model
from memgaze.errors import MemgazeError
from runtime_fixtures import make_bundle, make_clip, make_folder, synthetic_frame

SIZE = 64


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_bundle(tmp_path_factory.mktemp("bundle"), size=SIZE, personalized=True, int8=True)


@pytest.fixture(scope="module")
def model(bundle: Path):
    with memgaze.load(bundle, backend="onnxruntime", precision="fp32", user="alice", threads=1) as opened:
        yield opened


def test_predict_one_image_and_a_list(model) -> None:
    image = synthetic_frame(3, 120)[:, :100]  # any size; not the model's
    one = model.predict(image)
    assert isinstance(one, memgaze.Prediction) and 0.0 <= one.score <= 1.0
    assert one.heatmap.shape == (SIZE // 8, SIZE // 8) and one.heatmap.dtype == np.float32
    row, col = np.unravel_index(int(np.argmax(one.heatmap)), one.heatmap.shape)
    # the centre of that cell of the 8 x 8 map in the 100 x 120 image's pixels: x = (col + 0.5) * 12.5, y = (row + 0.5) * 15
    assert one.peak == ([6, 18, 31, 43, 56, 68, 81, 93][col], [7, 22, 37, 52, 67, 82, 97, 112][row])
    assert set(one.timings) == {"pre", "infer", "post"} and one.timings["infer"] > 0
    images = [synthetic_frame(i, 96) for i in range(5)]
    many = model.predict(images)
    assert [p.index for p in many] == [0, 1, 2, 3, 4]
    singles = [model.predict(image).score for image in images]
    assert np.allclose([p.score for p in many], singles, atol=1e-5)  # batched = one by one
    assert all(np.allclose(p.heatmap, model.predict(image).heatmap, atol=1e-5) for p, image in zip(many, images))
    assert not np.allclose(many[0].heatmap, many[1].heatmap)  # the output depends on the image


def test_predict_on_a_long_list_decodes_one_chunk_at_a_time(model, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import memgaze.runtime.api as api

    folder = make_folder(tmp_path / "imgs", frames=3, size=80)
    paths = [folder / f"img_{i % 3:03d}.jpg" for i in range(api.MAX_BATCH * 2 + 5)]
    decoded_before_infer: list[int] = []
    pending = 0
    real_check, real_infer = api.check_image, model.backend.infer

    def counting_check(*args, **kwargs):  # the real decode, counted
        nonlocal pending
        pending += 1
        return real_check(*args, **kwargs)

    def counting_infer(images, users=None):  # the real engine; how many decoded images waited for it
        nonlocal pending
        decoded_before_infer.append(pending)
        pending = 0
        return real_infer(images, users)

    monkeypatch.setattr(api, "check_image", counting_check)
    monkeypatch.setattr(model.backend, "infer", counting_infer)
    got = model.predict(paths)
    assert decoded_before_infer == [api.MAX_BATCH, api.MAX_BATCH, 5]  # never more decoded images than one engine call holds
    assert [p.index for p in got] == list(range(len(paths)))  # numbered across chunks
    assert all(p.image is None for p in got)  # not kept unless asked
    last_001 = max(i for i in range(len(paths)) if i % 3 == 1)  # img_001 in the last chunk
    assert got[0].score == pytest.approx(got[3].score) and got[1].score == pytest.approx(got[last_001].score)
    assert all(p.image is not None for p in model.predict(paths[:3], keep_images=True))


def test_a_model_prints_its_name_backend_input_and_viewer(bundle: Path, model) -> None:
    assert repr(model) == f"Model('{bundle.name}', onnxruntime fp32, input {SIZE}x{SIZE}, viewer alice of 3)"
    with memgaze.load(backend="onnxruntime", precision="int8", threads=1) as builtin:
        height, width = builtin.input_size
        assert str(builtin) == f"Model('{builtin_model.DEFAULT.name} v{builtin_model.DEFAULT.version}', onnxruntime int8, input {width}x{height}, viewer generic of 1)"


def test_predict_reads_a_path_and_uses_the_user(bundle: Path, model, tmp_path: Path) -> None:
    path = make_folder(tmp_path / "imgs", frames=1, size=SIZE) / "img_000.jpg"
    assert model.predict(path).score == pytest.approx(model.predict(str(path)).score)
    with memgaze.load(bundle, backend="onnxruntime", precision="fp32", user="bob", threads=1) as bob:
        assert abs(bob.predict(path).score - model.predict(path).score) > 1e-6


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.zeros((32, 32, 3), np.float32), "expected a uint8 image, got float32"),
        (np.zeros((32, 32), np.uint8), "grayscale"),
        (np.zeros((32, 32, 1), np.uint8), "grayscale"),
        (np.zeros((32, 32, 4), np.uint8), "4 channels"),
        (np.zeros((32, 32, 5), np.uint8), "shape [H, W, 3]"),
        (np.zeros((0, 32, 3), np.uint8), "empty"),
        ([], "empty list"),
        ([np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8), np.uint8)], "image 1"),
        (42, "got int"),
        ("/no/such/image.jpg", "cannot read an image"),
    ],
)
def test_bad_input_is_one_clear_error(model, bad: object, message: str) -> None:
    with pytest.raises(MemgazeError) as caught:
        model.predict(bad)
    assert message in str(caught.value) and "\n" not in str(caught.value)
    assert memgaze.MemgazeError is MemgazeError


def test_bad_bundle_backend_or_user_is_one_clear_error(bundle: Path, tmp_path: Path) -> None:
    for call, message in [
        (lambda: memgaze.load(tmp_path / "nothing"), "nothing"),
        (lambda: memgaze.load(bundle, backend="magic"), "unknown backend"),
        (lambda: memgaze.load(bundle, user="carol"), "unknown user"),
    ]:
        with pytest.raises(MemgazeError, match=message):
            call()


def test_stream_over_a_video(model, tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "clip.mp4", frames=24, size=96)
    stream = model.stream(str(clip), keep_images=True)
    got = list(stream)
    assert [p.index for p in got] == list(range(24)) and {p.source for p in got} == {0}
    captured = [p.captured for p in got]
    assert captured == sorted(captured) and all(p.latency_ms > 0 and p.t >= 0 for p in got)
    assert all(p.image is not None and p.image.shape == (96, 96, 3) for p in got)
    assert {"capture", "pre", "infer", "post"} <= set(got[0].timings) and got[0].timings["pre"] > 0
    assert stream.summary.frames == 24 and stream.summary.dropped == 0
    # The stream scores what predict() scores (same resize, same model).
    first = model.predict(got[0].image)
    assert got[0].score == pytest.approx(first.score, abs=1e-6) and got[0].peak == first.peak


def test_stream_over_a_folder_decodes_jpegs_smaller_and_gives_peaks_in_full_size_pixels(model, tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    photos = [cv2.resize(synthetic_frame(i, 96), (800, 600), interpolation=cv2.INTER_CUBIC) for i in range(3)]
    for i, photo in enumerate(photos):
        cv2.imwrite(str(folder / f"{i}.jpg"), photo, [cv2.IMWRITE_JPEG_QUALITY, 95])
    got = list(model.stream(str(folder), keep_images=True))
    assert [p.index for p in got] == [0, 1, 2]
    for prediction, photo in zip(got, photos):
        assert prediction.image.shape == (150, 200, 3)  # 1/4 keeps both sides ≥ 2 × 64
        row, col = np.unravel_index(int(np.argmax(prediction.heatmap)), prediction.heatmap.shape)
        # the cell's centre in the 800 x 600 photo (not the 200 x 150 decode): x = (col + 0.5) * 100, y = (row + 0.5) * 75
        assert prediction.peak == (50 + 100 * col, [37, 112, 187, 262, 337, 412, 487, 562][row])
        # the score is that of the full-size photo, within the resize tolerance
        assert prediction.score == pytest.approx(model.predict(photo).score, abs=0.01)
    from_path = model.predict(folder / "0.jpg", keep_images=True)  # predict(path) reads the same way
    assert from_path.image.shape == (150, 200, 3) and from_path.peak == got[0].peak
    assert from_path.score == pytest.approx(got[0].score, abs=1e-6)


def test_stream_batches_several_sources_in_step_with_ids(model, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    long_clip = make_clip(tmp_path / "long.mp4", frames=12, size=96)
    folder = make_folder(tmp_path / "imgs", frames=5, size=80)
    calls: list[int] = []
    infer = model.backend.infer

    def counting(images: np.ndarray, users: np.ndarray | None = None):
        calls.append(images.shape[0])
        assert users is not None and users.tolist() == [1] * images.shape[0]  # alice, for every frame of the batch
        return infer(images, users)

    monkeypatch.setattr(model.backend, "infer", counting)
    got = list(model.stream([str(long_clip), str(folder), str(long_clip)], batch=None))
    assert len(got) == 12 + 5 + 12
    for source, count in ((0, 12), (1, 5), (2, 12)):
        assert [p.index for p in got if p.source == source] == list(range(count))
    # One engine call per batch: the newest frame of every source still running, in source order.
    assert calls == [3] * 5 + [2] * 7
    assert [p.source for p in got[:6]] == [0, 1, 2, 0, 1, 2]
    assert [p.source for p in got[15:19]] == [0, 2, 0, 2]


def test_stream_scores_files_in_batches_in_order_naming_each(model, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clip = make_clip(tmp_path / "clip.mp4", frames=12, size=96, fps=25.0)
    folder = make_folder(tmp_path / "imgs", frames=5, size=80)
    calls: list[int] = []
    infer = model.backend.infer

    def counting(images: np.ndarray, users: np.ndarray | None = None):
        calls.append(images.shape[0])
        return infer(images, users)

    monkeypatch.setattr(model.backend, "infer", counting)
    got = list(model.stream([str(clip), str(folder)], batch=4, decode_threads=2))
    assert calls == [4, 4, 4, 4, 1]  # every file of every source, in order, 4 per engine call
    assert [(p.source, p.file, p.file_frame) for p in got] == (
        [(0, "clip.mp4", i) for i in range(12)] + [(1, f"img_{i:03d}.jpg", None) for i in range(5)])
    assert [p.timestamp for p in got[:3]] == [0.0, 0.04, 0.08]  # frame / 25 FPS
    assert [p.index for p in got if p.source == 1] == list(range(5))
    # the same scores as one image at a time
    single = model.predict([folder / f"img_{i:03d}.jpg" for i in range(5)])
    assert [p.score for p in got[12:]] == pytest.approx([p.score for p in single], abs=1e-6)


def test_stream_stops_at_max_frames_and_rejects_no_sources(model, tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "clip.mp4", frames=20, size=64)
    assert len(list(model.stream([str(clip), str(clip)], max_frames=7))) == 7
    with pytest.raises(MemgazeError, match="empty list of sources"):
        model.stream([])
    with pytest.raises(MemgazeError, match="not a file, a folder"):
        model.stream(str(tmp_path / "missing.mp4"))


LIGHT = """
import sys
import memgaze
assert issubclass(memgaze.MemgazeError, Exception)
heavy = ("torch", "onnx", "tensorrt", "onnxruntime", "cv2", "numpy", "rich", "typer")
before = sorted(m for m in sys.modules if m.split(".")[0] in heavy or m.startswith("memgaze.runtime"))
model = memgaze.load(sys.argv[1], backend="onnxruntime")
prediction = model.predict(memgaze_image := __import__("numpy").zeros((40, 50, 3), "uint8"))
after = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "onnx", "tensorrt"))
api = sys.modules["memgaze.runtime.api"]
same = [memgaze.load is api.load, memgaze.Model is api.Model, memgaze.Prediction is api.Prediction]
print(__import__("json").dumps({"before": before, "after": after, "score": prediction.score, "same": same,
                                "old": "memgaze.api" in sys.modules}))
"""


def test_import_memgaze_is_light_and_load_needs_no_torch_or_onnx(bundle: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-c", LIGHT, str(bundle)], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["before"] == []  # `import memgaze` (and its MemgazeError) loads no runtime, numpy, OpenCV or inference library
    assert result["after"] == []  # a model in use on ONNX Runtime: never torch, onnx or tensorrt
    assert 0.0 <= result["score"] <= 1.0
    assert result["same"] == [True, True, True] and not result["old"]  # memgaze.load & co. are memgaze.runtime.api's


def test_the_core_never_imports_the_runtime() -> None:
    """memgaze's core modules import nothing of memgaze.runtime: the API lives there, and memgaze/__init__.py alone
    reaches it, lazily (a frame's path is runtime → runtime, not runtime → core → runtime)."""
    core = Path(memgaze.__file__).parent
    offenders = []
    for path in sorted(core.rglob("*.py")):
        if path.name == "__init__.py" and path.parent == core:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            if any(name == "memgaze.runtime" or name.startswith("memgaze.runtime.") for name in names):
                offenders.append(f"{path.relative_to(core)}:{node.lineno}")
    assert offenders == []
