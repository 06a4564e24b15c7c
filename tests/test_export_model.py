"""memgaze-export on a real (untrained, tiny) student: ONNX vs PyTorch, INT8 Q/DQ graph, bundle, bad input."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from memgaze.manifest import read_manifest, verify_files

from memgaze.train.checkpoint import load_checkpoint, save_checkpoint
from memgaze.train.models import build_model, default_config

SIZE = 64


def make_checkpoint(path: Path, kind: str = "student", users: list[str] | None = None) -> Path:
    """A tiny untrained checkpoint."""
    config = default_config(kind, SIZE, users or ["generic", "user_a"])
    save_checkpoint(path, build_model(config), config)
    return path


@pytest.fixture(scope="module")
def student(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "student.safetensors")


@pytest.fixture(scope="module")
def frames(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from memgaze.train.data.demo import make_demo_dataset

    root = tmp_path_factory.mktemp("demo") / "demo"
    make_demo_dataset(root, 24, SIZE, 2, 3)
    return root / "images"


def run_export(args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    from memgaze.export.cli import main

    capsys.readouterr()  # drop output of the test's own setup
    monkeypatch.setattr(sys, "argv", ["memgaze-export", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    return int(exit_info.value.code or 0), capsys.readouterr().err


@pytest.fixture(scope="module")
def bundle(student: Path, frames: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from typer.testing import CliRunner

    from memgaze.export.cli import app

    out = tmp_path_factory.mktemp("bundle") / "deploy"
    result = CliRunner().invoke(app, [
        "--checkpoint", str(student), "--out", str(out), "--int8", "--calib", str(frames), "--calib-count", "16",
        "--allow-degraded",  # untrained weights: the gate's number is checked below, not enforced
    ])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return out


def test_bundle_manifest_and_checksums(bundle: Path) -> None:
    manifest = read_manifest(bundle)
    verify_files(bundle, manifest)
    assert {"model.onnx", "model.int8.onnx", "model.int8.ort.onnx", "calibration.cache", "gate_samples.npz"} <= set(manifest.files)
    assert manifest.input == {"name": "image", "height": SIZE, "width": SIZE, "layout": "NHWC", "dtype": "uint8", "color": "BGR"}
    assert manifest.personalized is True and manifest.users == ["generic", "user_a"]
    assert manifest.models == {"fp32": "model.onnx", "int8": "model.int8.onnx"}
    assert manifest.onnxruntime_cpu == {"int8": "model.int8.ort.onnx"}
    assert manifest.calibration is not None and manifest.accuracy is not None
    assert manifest.calibration["scheme"] == "tensorrt" and manifest.calibration["onnxruntime_cpu"]["scheme"] == "onnxruntime-cpu"
    assert manifest.engines == [] and "trtexec" not in manifest.extra  # memgaze-engine --print-trtexec gives it per version
    assert manifest.extra["verification"]["max_abs_score_diff"] <= 1e-4
    assert manifest.calibration["frames"] == 16 and manifest.calibration["held_out"] >= 2
    assert set(manifest.accuracy) >= {"spearman", "mean_abs_score_diff", "heatmap_cc", "passed"}
    assert manifest.accuracy["heatmap_cc"] > 0.5
    cpu_accuracy = manifest.extra["accuracy_onnxruntime_cpu"]
    assert cpu_accuracy["images"] == manifest.accuracy["images"] and cpu_accuracy["heatmap_cc"] > 0.5
    assert (bundle / "calibration.cache").read_text().startswith("TRT-")


def test_gate_samples_are_held_out_frames_with_their_fp32_outputs(bundle: Path) -> None:
    import onnxruntime as ort

    from memgaze.gate_samples import read_samples

    manifest = read_manifest(bundle)
    assert manifest.gate_samples is not None  # 24 frames in all: 8 held out, then every calibration frame
    assert manifest.gate_samples.source == "frames (8 held out, 16 from calibration: too few to hold out 32)"
    samples = read_samples(bundle, manifest)
    assert len(samples.frames) == 24 and samples.frames.shape[1:] == (SIZE, SIZE, 3) and samples.users is not None
    sess = ort.InferenceSession(str(bundle / "model.onnx"), providers=["CPUExecutionProvider"])
    score, heatmap = sess.run(["score", "heatmap"], {"image": samples.frames, "user": samples.users})
    assert np.allclose(score, samples.scores, atol=1e-5) and np.allclose(heatmap, samples.heatmaps, atol=1e-6)


def test_every_file_meant_for_tensorrt_passes_its_parser_rules(bundle: Path) -> None:
    from memgaze.export.trt_compat import check_file

    manifest = read_manifest(bundle)
    assert set(manifest.tensorrt_check) == {"model.onnx", "model.int8.onnx"}
    assert all(check["passed"] and check["findings"] == [] for check in manifest.tensorrt_check.values())
    for name in manifest.tensorrt_check:
        assert check_file(bundle / name) == []
    first = [n.op_type for n in onnx.load(str(bundle / "model.onnx")).graph.node if "image" in n.input]
    assert first == ["Cast"]  # no layout op on the uint8 image
    model = onnx.load(str(bundle / "model.int8.onnx"))
    inits = {i.name: i.data_type for i in model.graph.initializer}
    assert not [n for n in model.graph.node if n.op_type == "DequantizeLinear" and inits.get(n.input[0]) == onnx.TensorProto.INT32]
    assert {o.domain for o in model.opset_import} <= {"", "ai.onnx"}  # no unused contrib domains declared


def test_fp32_graph_contract(bundle: Path) -> None:
    import onnxruntime as ort

    model = onnx.load(str(bundle / "model.onnx"))
    inputs = {i.name: i.type.tensor_type for i in model.graph.input}
    assert inputs["image"].elem_type == onnx.TensorProto.UINT8 and inputs["user"].elem_type == onnx.TensorProto.INT64
    assert [d.dim_value for d in inputs["image"].shape.dim][1:] == [SIZE, SIZE, 3]
    assert inputs["image"].shape.dim[0].dim_param  # dynamic batch
    assert {p.key for p in model.metadata_props} >= {"memgaze_version", "input_size", "users", "normalization"}
    sess = ort.InferenceSession(str(bundle / "model.onnx"), providers=["CPUExecutionProvider"])
    image = np.random.default_rng(0).integers(0, 256, (3, SIZE, SIZE, 3), dtype=np.uint8)
    score, heatmap = sess.run(["score", "heatmap"], {"image": image, "user": np.array([0, 1, 0], np.int64)})
    assert score.shape == (3,) and heatmap.shape[:2] == (3, 1) and (heatmap >= 0).all()
    assert np.allclose(heatmap.sum(axis=(1, 2, 3)), 1.0, atol=1e-4)


def test_onnx_matches_pytorch(student: Path, tmp_path: Path, frames: Path) -> None:
    from memgaze.export.onnx_export import export_onnx
    from memgaze.export.verify import verification_images, verify_onnx

    model, config = load_checkpoint(student, expect_kind="student")
    export_onnx(model.eval(), config, tmp_path / "m.onnx")
    report = verify_onnx(model, config, tmp_path / "m.onnx", verification_images(None, (SIZE, SIZE)))
    assert report.images >= 32 and report.max_abs_score_diff <= 1e-4 and report.heatmap_cc_min >= 0.9999


def test_int8_graph_is_symmetric_per_channel_qdq(bundle: Path) -> None:
    model = onnx.load(str(bundle / "model.int8.onnx"))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    ops = [n.op_type for n in model.graph.node]
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    zero_points = [inits[n.input[2]] for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear") and len(n.input) > 2 and n.input[2] in inits]
    int8_zps = [z for z in zero_points if z.dtype == np.int8]
    assert int8_zps and all((z == 0).all() for z in int8_zps)
    weight_dq = [n for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in inits and inits[n.input[0]].dtype == np.int8]
    per_channel = [n for n in weight_dq if inits[n.input[1]].size > 1]
    assert per_channel and all(any(a.name == "axis" for a in n.attribute) for n in per_channel)
    # The uint8 head stays float: the image input feeds no QuantizeLinear directly or via the first cast.
    first = [n for n in model.graph.node if "image" in n.input]
    assert all(n.op_type not in ("QuantizeLinear", "DequantizeLinear") for n in first)
    # The outputs come from float ops, not from a DequantizeLinear.
    producers = {o: n.op_type for n in model.graph.node for o in n.output}
    assert producers["heatmap"] != "DequantizeLinear" and producers["score"] != "DequantizeLinear"
    # Q/DQ quantize the inputs of compute layers, never a conv's raw output on its way to an activation
    # (a pre-ReLU range would leave the clipped values a handful of levels).
    compute = ("Conv", "Gemm", "MatMul")
    consumers: dict[str, list[str]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node.op_type)
    dq_of = {n.input[0]: n.output[0] for n in model.graph.node if n.op_type == "DequantizeLinear"}
    raw = [n for n in model.graph.node if n.op_type == "QuantizeLinear" and producers.get(n.input[0]) in compute]
    activations = {"Relu", "Clip", "HardSwish", "HardSigmoid", "Sigmoid"}
    assert not any(activations & set(consumers[dq_of[q.output[0]]]) for q in raw)


def test_entropy_calibration_clips_rare_outliers(tmp_path: Path) -> None:
    """``--calib-method entropy`` searches its threshold (ORT's own 128-bin entropy calibrator would
    return the min/max range): activations N(0, 1) with rare outliers at 50 get a range well inside ±50."""
    from onnx import TensorProto, helper
    from onnxruntime.quantization import CalibrationDataReader
    from onnxruntime.quantization.calibrate import load_tensors_data

    from memgaze.export.quantize import entropy_ranges

    weight = numpy_helper.from_array(np.eye(4, dtype=np.float32)[:, :, None, None], "w")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"]), helper.make_node("Relu", ["y"], ["z"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 16, 16])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 4, 16, 16])], [weight],
    )
    model = tmp_path / "conv.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(model))
    rng = np.random.default_rng(0)
    batches = [rng.standard_normal((1, 4, 16, 16)).astype(np.float32) for _ in range(8)]
    batches[0][0, 0, 0, 0] = 50.0

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.rewind()

        def rewind(self) -> None:
            self.items = iter(batches)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(({"x": b} for b in self.items), None)

    entropy_ranges(model, Reader(), tmp_path / "ranges.json")
    low, high = load_tensors_data(tmp_path / "ranges.json")["x"].range_value
    assert float(np.max(high)) < 25.0 and float(np.min(low)) > -25.0


def test_bad_inputs_one_line(student: Path, frames: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    out = str(tmp_path / "deploy")
    code, err = run_export(["--checkpoint", str(tmp_path / "nope.safetensors"), "--out", out], monkeypatch, capsys)
    assert code == 2 and err.strip().count("\n") == 0 and err.startswith("error:")
    teacher = make_checkpoint(tmp_path / "teacher.safetensors", kind="teacher")
    code, err = run_export(["--checkpoint", str(teacher), "--out", out], monkeypatch, capsys)
    assert code == 2 and err.startswith("error:") and "Traceback" not in err
    foreign = tmp_path / "foreign.safetensors"
    foreign.write_bytes(b"\x00" * 64)
    code, err = run_export(["--checkpoint", str(foreign), "--out", out], monkeypatch, capsys)
    assert code == 2 and err.startswith("error:")
    (tmp_path / "empty").mkdir()
    code, err = run_export(["--checkpoint", str(student), "--out", out, "--int8", "--calib", str(tmp_path / "empty")], monkeypatch, capsys)
    assert code == 2 and "no image or video" in err
    few = tmp_path / "few"
    few.mkdir()
    for name in sorted(p.name for p in frames.iterdir())[:3]:
        (few / name).write_bytes((frames / name).read_bytes())
    code, err = run_export(["--checkpoint", str(student), "--out", out, "--int8", "--calib", str(few)], monkeypatch, capsys)
    assert code == 2 and "at least 8" in err
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, err = run_export(["--checkpoint", str(student), "--out", str(blocker / "deploy")], monkeypatch, capsys)
    assert code == 2 and "cannot write the bundle" in err
    assert not Path(out).exists()


def test_gate_failure_leaves_no_bundle(student: Path, frames: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import memgaze.gate as gate

    monkeypatch.setattr(gate, "RULE", gate.GateRule(min_spearman=1.01, max_score_shift=float("inf"), min_heatmap_cc=0.0,
                                                    min_heatmap_cc_worst=0.0))  # only Spearman, which no model can pass
    out = tmp_path / "deploy"
    code, err = run_export(["--checkpoint", str(student), "--out", str(out), "--int8", "--calib", str(frames), "--calib-count", "12"], monkeypatch, capsys)
    assert code == 2 and not out.exists()
    assert "INT8 model model.int8.onnx is too far from FP32: Spearman " in err and "< 1.01 (Spearman" in err
    assert [p.name for p in tmp_path.iterdir()] == []


def test_onnxruntime_cpu_int8_is_u8s8_and_fuses(bundle: Path, tmp_path: Path) -> None:
    import onnxruntime as ort

    model = onnx.load(str(bundle / "model.int8.ort.onnx"))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    activation_q = [n for n in model.graph.node if n.op_type == "QuantizeLinear" and n.input[0] not in inits]
    assert activation_q and all(inits[n.input[2]].dtype == np.uint8 for n in activation_q)  # U8 activations
    weights = [inits[n.input[0]] for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in inits and inits[n.input[0]].dtype == np.int8]
    assert weights and all(np.abs(w).max() <= 64 for w in weights)  # S8 weights, 7-bit (reduce_range)
    first_conv = next(n for n in model.graph.node if n.op_type == "Conv")
    producers = {o: n.op_type for n in model.graph.node for o in n.output}
    assert producers.get(first_conv.input[1]) != "DequantizeLinear"  # the input conv stays float

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    sess = ort.InferenceSession(str(bundle / "model.int8.ort.onnx"), options, providers=["CPUExecutionProvider"])
    fused = [n.op_type for n in onnx.load(str(tmp_path / "optimized.onnx")).graph.node]
    assert fused.count("QLinearConv") >= fused.count("Conv") + fused.count("FusedConv")  # most convs run in int8
    image = np.random.default_rng(1).integers(0, 256, (2, SIZE, SIZE, 3), dtype=np.uint8)
    feed = {"image": image, "user": np.array([0, 1], np.int64)}
    score, heatmap = sess.run(["score", "heatmap"], feed)
    ref_score, ref_heatmap = ort.InferenceSession(str(bundle / "model.onnx"), providers=["CPUExecutionProvider"]).run(["score", "heatmap"], feed)
    assert np.abs(score - ref_score).max() < 0.05
    np.testing.assert_allclose(heatmap.sum(axis=(1, 2, 3)), 1.0, atol=1e-4)
    assert np.corrcoef(heatmap.ravel(), ref_heatmap.ravel())[0, 1] > 0.5


def test_image_size_sets_input_map_metadata_and_manifest_together(
    student: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "b96"
    code, err = run_export(["--checkpoint", str(student), "--out", str(out), "--image-size", "96", "--calib", str(tmp_path / "none")], monkeypatch, capsys)
    assert code == 0, err
    manifest = read_manifest(out)
    proto = onnx.load(str(out / "model.onnx"))
    meta = {prop.key: prop.value for prop in proto.metadata_props}
    image_dims = [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim[1:3]]
    heatmap_dims = [d.dim_value for d in proto.graph.output[1].type.tensor_type.shape.dim[2:]]
    assert image_dims == [96, 96] and manifest.input_size == (96, 96)
    assert heatmap_dims == manifest.map_size == manifest.outputs["heatmap"]["shape"][2:] == [12, 12]
    assert meta["input_size"] == "96x96" and meta["map_size"] == "12x12"


def test_image_size_not_a_multiple_of_32_is_one_line(
    student: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = run_export(["--checkpoint", str(student), "--out", str(tmp_path / "b"), "--image-size", "100"], monkeypatch, capsys)
    assert code == 2 and "Traceback" not in err
    assert [line for line in err.splitlines() if line.startswith("error:")] == ["error: image size 100x100 must be a positive multiple of 32 on both sides"]
    assert not (tmp_path / "b").exists()
