"""memgaze-bench latency/accuracy over a tiny real bundle (untrained student, INT8 via memgaze-export)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from memgaze.bench.cli import app
from memgaze.correlation import spearman
from memgaze.train.checkpoint import save_checkpoint
from memgaze.train.models import build_model, count_macs, default_config

SIZE = 64


def _checkpoint(path: Path, kind: str) -> Path:
    config = default_config(kind, image_size=SIZE, users=["generic", "user_a"], backbone_weights=None)
    save_checkpoint(path, build_model(config), config)
    return path


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """runs/student.safetensors + teacher.safetensors + demo-data beside them, and deploy/ with FP32 + INT8."""
    from memgaze.export.cli import app as export_app
    from memgaze.train.data.demo import make_demo_dataset

    run = tmp_path_factory.mktemp("run")
    make_demo_dataset(run / "demo-data", 32, SIZE, 2, 0)
    student = _checkpoint(run / "student.safetensors", "student")
    _checkpoint(run / "teacher.safetensors", "teacher")
    out = run / "deploy"
    result = CliRunner().invoke(export_app, ["--checkpoint", str(student), "--out", str(out), "--int8", "--calib",
                                             str(run / "demo-data" / "images"), "--calib-count", "16", "--allow-degraded"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return out


def _bench(args: list[str]) -> None:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output + repr(result.exception)


def test_latency_side_by_side(bundle: Path, tmp_path: Path) -> None:
    _bench(["latency", "--model", str(bundle), "--backends", "torch,onnxruntime,tensorrt", "--precisions",
            "fp32,fp16,int8", "--models", "student,teacher", "--batch", "1", "--iters", "4", "--warmup", "1", "--rounds", "2", "--out", str(tmp_path)])
    data = json.loads((tmp_path / "latency.json").read_text())
    ran = {(r["model"], r["backend"], r["precision"]) for r in data["rows"]}
    assert {("student", "onnxruntime", "fp32"), ("student", "onnxruntime", "int8"),
            ("student", "torch", "fp32"), ("teacher", "torch", "fp32")} <= ran
    for row in data["rows"]:
        assert row["batch"] == 1 and row["iters"] == 4
        assert 0 < row["p50_ms"] <= row["p90_ms"] <= row["p99_ms"]
    skipped = {(s["model"], s["backend"], s["precision"]): s["reason"] for s in data["skipped"]}
    assert not ran & set(skipped)
    assert all(reason.strip() for reason in skipped.values())
    assert ("student", "onnxruntime", "fp16") in skipped  # no fp16 ONNX in the bundle
    assert ("student", "torch", "int8") in skipped
    if shutil.which("nvidia-smi") is None:
        assert skipped[("student", "tensorrt", "int8")] == ("TensorRT is not installed on this machine (it needs an NVIDIA GPU); "
                                                            f"on one, build the plan with memgaze-engine {bundle} --precision int8")
    comparisons = {q["comparison"] for q in data["ratios"]}
    assert {"student vs teacher", "INT8 vs FP32"} <= comparisons
    md = (tmp_path / "report.md").read_text()
    assert "Skipped rows" in md and skipped[("student", "onnxruntime", "fp16")] in md


def test_latency_onnxruntime_only_and_missing_teacher(bundle: Path, tmp_path: Path) -> None:
    empty = tmp_path / "ckpts"
    empty.mkdir()
    _bench(["latency", "--model", str(bundle), "--backends", "onnxruntime,torch", "--precisions", "fp32,int8",
            "--models", "student,teacher", "--batch", "1,2", "--iters", "3", "--warmup", "0", "--checkpoints", str(empty), "--out", str(tmp_path)])
    data = json.loads((tmp_path / "latency.json").read_text())
    assert {(r["model"], r["backend"], r["precision"], r["batch"]) for r in data["rows"]} == {
        ("student", "onnxruntime", p, b) for p in ("fp32", "int8") for b in (1, 2)
    }
    # On the CPU provider the INT8 rows run the bundle's ONNX Runtime CPU model, not the TensorRT one.
    assert {r["precision"]: r["file"] for r in data["rows"]} == {"fp32": "model.onnx", "int8": "model.int8.ort.onnx"}
    assert all(r["file"] in r["runs_on"] for r in data["rows"])
    reasons = [s["reason"] for s in data["skipped"] if s["backend"] == "torch" and s["precision"] == "fp32"]
    assert len(reasons) == 4 and all("checkpoint at" in r and "--checkpoints" in r for r in reasons)


def test_latency_bad_input_is_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["latency", "--model", str(tmp_path / "nope"), "--out", str(tmp_path)])
    assert result.exit_code != 0 and "does not exist" in str(result.exception)


def test_accuracy_per_precision(bundle: Path, tmp_path: Path) -> None:
    run = bundle.parent
    _bench(["accuracy", "--model", str(bundle), "--data", str(run / "demo-data"), "--out", str(tmp_path)])
    data = json.loads((tmp_path / "accuracy.json").read_text())
    assert [r["precision"] for r in data["rows"]] == ["int8", "fp32"]
    for row in data["rows"]:
        assert -1 <= row["spearman"] <= 1 and row["mse"] >= 0
        assert row["images_with_maps"] > 0 and row["cc"] is not None and 0 <= row["auc_judd"] <= 1
        assert row["p50_ms"] > 0
    (agree,) = data["agreement"]
    assert agree["candidate"] == "int8" and agree["images"] == data["settings"]["images"]
    assert (tmp_path / "accuracy_latency.png").is_file()
    assert "Accuracy vs latency" in (tmp_path / "report.md").read_text()


def test_latency_compares_two_student_backbones(bundle: Path, tmp_path: Path) -> None:
    """--compare: the MobileNetV3 student's rows beside the Lite0 student's, each at its own input size, MACs of
    each, in one run."""
    from memgaze.export.cli import app as export_app

    config = default_config("student", image_size=SIZE + 32, users=["generic", "user_a"], backbone_weights=None,
                            backbone="mobilenet_v3_small")
    mnv3 = save_checkpoint(tmp_path / "mnv3.safetensors", build_model(config), config)
    result = CliRunner().invoke(export_app, ["--checkpoint", str(mnv3), "--out", str(tmp_path / "mnv3"), "--int8", "--calib",
                                             str(bundle.parent / "demo-data" / "images"), "--calib-count", "16", "--allow-degraded"])
    assert result.exit_code == 0, result.output
    # the module's bundle has the default student (EfficientNet-Lite0)
    _bench(["latency", "--model", str(bundle), "--compare", str(tmp_path / "mnv3"), "--backends", "onnxruntime",
            "--precisions", "fp32,int8", "--models", "student", "--batch", "1", "--iters", "3", "--warmup", "1",
            "--rounds", "1", "--out", str(tmp_path / "bench")])
    data = json.loads((tmp_path / "bench" / "latency.json").read_text())
    assert [s["backbone"] for s in data["students"]] == ["efficientnet_lite0", "mobilenet_v3_small"]
    assert [s["input_size"] for s in data["students"]] == [[SIZE, SIZE], [SIZE + 32, SIZE + 32]]
    lite, mnv3 = (s["macs"] for s in data["students"])
    assert lite > mnv3 == count_macs(build_model(config), SIZE + 32)  # each student counted at its own input size
    assert {(r["bundle"], r["precision"]) for r in data["rows"]} == {(0, "fp32"), (0, "int8"), (1, "fp32"), (1, "int8")}
    assert {q["comparison"] for q in data["ratios"]} >= {"INT8 vs FP32", "student vs other student"}
    assert "mobilenet_v3_small" in (tmp_path / "bench" / "report.md").read_text()


def test_agreement_with_a_reference_model(bundle: Path, tmp_path: Path) -> None:
    """memgaze-bench agreement: Spearman and pairwise accuracy of FP32 and INT8 against an ONNX reference,
    whose scores are cached beside the photos (a rerun reuses them)."""
    reference = Path(__file__).parent / "data" / "demo_teacher.int8.onnx"
    data = tmp_path / "photos"
    shutil.copytree(bundle.parent / "demo-data" / "images", data / "images")
    args = ["agreement", "--model", f"lite={bundle}", "--data", str(data), "--reference", str(reference), "--out", str(tmp_path / "a")]
    _bench(args)
    first = json.loads((tmp_path / "a" / "agreement.json").read_text())
    assert [r["precision"] for r in first["rows"]][0] == "fp32"
    assert {r["file"] for r in first["rows"]} == {"model.onnx", "model.int8.ort.onnx", "model.int8.onnx"}
    for row in first["rows"]:
        assert -1 <= row["spearman"] <= 1 and 0 <= row["pairwise"] <= 1 and row["model"] == "lite"
        low, high = row["spearman_ci95"]
        assert low <= row["spearman"] <= high
        assert -1 <= row["map_cc"] <= 1 and 0 < row["centre_cc"] <= 1  # the reference has a map: CC and its baseline
        # per-photo scores are kept, so that models can be compared photo by photo from the file alone
        assert len(row["scores"]) == len(first["settings"]["photos"]) == 32
        assert spearman(np.array(row["scores"]), np.array(first["settings"]["reference_scores"])) == pytest.approx(row["spearman"])
    assert first["settings"]["images"] == 32 and not first["settings"]["reference_cached"]
    low, high = first["rows"][0]["spearman_ci95"]
    assert high - low > 0.1  # an untrained FP32 student on 32 photos: ρ is far from pinned down
    photos = first["settings"]["photos"]  # the rerun finds groups.json beside the photos: ρ inside each group too
    (data / "groups.json").write_text(json.dumps({"half": {name: "ab"[i % 2] for i, name in enumerate(photos)}}))
    _bench(args)
    again = json.loads((tmp_path / "a" / "agreement.json").read_text())
    assert again["settings"]["reference_cached"]
    within = again["rows"][0]["within"]["half"]
    assert [(g["group"], g["photos"]) for g in within["groups"]] == [("a", 16), ("b", 16)] and -1 <= within["mean"] <= 1
    report = (tmp_path / "a" / "report.md").read_text()
    assert "pairwise" in report and "centred Gaussian" in report and f"{low:.3f}–{high:.3f}" in report
    assert "inside groups of similar photos" in report


def test_the_reference_against_itself_on_mirrored_photos(bundle: Path, tmp_path: Path) -> None:
    """--reference-mirrored: the reference runs on each photo mirrored left-right and is measured against itself. A
    photo that is its own mirror image scores exactly as before; the others do not, and their maps are mirrored back
    before they are compared. The row sits beside the models' in the file, inside the groups and in the report."""
    import cv2

    from memgaze.correlation import pearson_rows
    from memgaze.train.label_free.external_teacher import open_teacher

    reference = Path(__file__).parent / "data" / "demo_teacher.int8.onnx"
    photos = sorted((bundle.parent / "demo-data" / "images").glob("*.jpg"))[:20]
    frames = [cv2.imread(str(path), cv2.IMREAD_COLOR) for path in photos]
    plain, symmetric = tmp_path / "plain", tmp_path / "symmetric"
    for folder in (plain, symmetric):
        (folder / "images").mkdir(parents=True)
    for path, frame in zip(photos, frames):
        cv2.imwrite(str(plain / "images" / (path.stem + ".png")), frame)
        half = frame[:, : frame.shape[1] // 2]
        cv2.imwrite(str(symmetric / "images" / (path.stem + ".png")), np.hstack([half, half[:, ::-1]]))
    (plain / "groups.json").write_text(json.dumps({"half": {p.stem + ".png": "ab"[i % 2] for i, p in enumerate(photos)}}))
    results = {}
    for folder in (plain, symmetric):
        _bench(["agreement", "--model", f"lite={bundle}", "--data", str(folder), "--reference", str(reference),
                "--reference-mirrored", "--out", str(folder / "a")])
        results[folder.name] = json.loads((folder / "a" / "agreement.json").read_text())
    assert results["symmetric"]["reference_mirrored"]["spearman"] == pytest.approx(1.0)
    mirrored = results["plain"]["reference_mirrored"]
    assert mirrored["precision"] == "reference" and len(mirrored["scores"]) == 20 and mirrored["spearman"] < 0.999
    teacher = open_teacher(str(reference))
    own, flipped = teacher.predict(frames), teacher.predict([cv2.flip(frame, 1) for frame in frames])
    assert own.maps is not None and flipped.maps is not None
    back, unturned = (float(pearson_rows(maps, own.maps).mean()) for maps in (flipped.maps[:, :, ::-1], flipped.maps))
    assert mirrored["map_cc"] == pytest.approx(back, abs=1e-6) and back > unturned
    assert [g["photos"] for g in mirrored["within"]["half"]["groups"]] == [10, 10]
    report = (plain / "a" / "report.md").read_text()
    assert report.count(mirrored["model"]) >= 3  # the table, the note under it, the table inside groups
    rescored = CliRunner().invoke(app, ["agreement", "--from", str(plain / "a" / "agreement.json"), "--groups",
                                        str(plain / "groups.json"), "--reference-mirrored", "--out", str(tmp_path / "r")])
    assert rescored.exit_code != 0 and "give --data, not --from" in str(rescored.exception)


def test_the_centre_baseline_is_the_best_centred_gaussian() -> None:
    from memgaze.bench.agreement import SIGMAS, centre_baseline, centred_gaussian, reference_maps

    targets = np.stack([centred_gaussian((20, 20), 0.25)] * 3)[:, None]
    cc, sigma = centre_baseline(targets)
    assert sigma == 0.25 and cc == pytest.approx(1.0) and 0.25 in SIGMAS
    off_centre = np.zeros((2, 8, 8), np.float32)
    off_centre[:, 0, 0] = 1.0
    cc_corner, _ = centre_baseline(reference_maps(off_centre, (20, 20)))
    assert cc_corner < 0  # a corner map is what a centre prior gets wrong
    assert reference_maps(off_centre, (20, 20)).shape == (2, 1, 20, 20)
