"""``memgaze-bench lamem`` end to end on a tiny SYNTHETIC five-split dataset: teacher and student trained
on every split (one step an epoch), the student without gaze imitation beside them, an ONNX peer (a
memgaze bundle's model.onnx) scored on each split's test list, the table with the published figures;
then a rerun that keeps the finished splits, resumes an interrupted one and tests the same checkpoints."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnxruntime as ort
import pytest

from memgaze.errors import MemgazeError
from memgaze.layout import read_split
from memgaze.media import resize_frame
from memgaze.train.data.demo import make_demo_dataset
from memgaze.train.config import build_config
from memgaze.metrics import mse, spearman
from memgaze.bench.protocol import train_split
from runtime_fixtures import make_bundle

SCRIPT = str(Path(sys.executable).with_name("memgaze-bench"))
TRAINING = ["--epochs-teacher", "1", "--epochs-student", "1", "--image-size", "32", "--batch-size", "8", "--device", "cpu",
            "--student-backbone", "mobilenet_v3_small"]
STUDENT = "memgaze student (mobilenet_v3_small)"
NO_GAZE = STUDENT + ", no gaze imitation"


def bench(*args: str) -> subprocess.CompletedProcess[str]:
    """``memgaze-bench ARGS`` on one thread (the shared 2-core machine: no oversubscription)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([SCRIPT, *args], capture_output=True, text=True, timeout=600, env=env)


@pytest.fixture(scope="module")
def protocol(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("lamem")
    data = base / "data"
    make_demo_dataset(data, count=20, image_size=32, users=1, seed=0, folds=5)
    peer = make_bundle(base / "bundle", size=32) / "model.onnx"
    out = base / "out"
    proc = bench("lamem", str(data), "--train", "--ablation", "--peer", str(peer), "--out", str(out), *TRAINING)
    assert proc.returncode == 0, proc.stderr
    return {"data": data, "peer": peer, "out": out, "result": json.loads((out / "lamem.json").read_text())}


def _rows(result: dict[str, Any], model: str) -> dict[int, dict[str, Any]]:
    return {r["fold"]: r for r in result["rows"] if r["model"] == model}


def test_every_split_has_every_model(protocol: dict[str, Any]) -> None:
    result = protocol["result"]
    assert result["settings"]["folds"] == [1, 2, 3, 4, 5] and result["settings"]["synthetic"]
    models = {r["model"] for r in result["rows"]}
    peer = next(m for m in models if m.startswith("model.onnx"))
    assert models == {"memgaze teacher (resnet50)", STUDENT, NO_GAZE, peer}
    for model in models:
        assert sorted(_rows(result, model)) == [1, 2, 3, 4, 5]
    summary = {e["model"]: e for e in result["summary"]}
    student = _rows(result, STUDENT)
    values = [student[k]["spearman"] for k in range(1, 6)]
    assert summary[STUDENT]["spearman_mean"] == pytest.approx(np.mean(values))
    assert summary[STUDENT]["spearman_std"] == pytest.approx(np.std(values, ddof=1))
    assert all(np.isfinite(student[k]["cc_own_user"]) for k in student)  # the demo data have gaze maps


def test_split_metrics_are_those_of_each_run(protocol: dict[str, Any]) -> None:
    """Each split was trained on its own files, and its test metrics are the ones the run itself recorded."""
    result, runs = protocol["result"], protocol["out"] / "runs"
    for fold, row in _rows(result, STUDENT).items():
        recorded = json.loads((runs / f"fold_{fold}" / "metrics.json").read_text())
        assert recorded["data"]["test_images"] == row["images"] == 4
        for key in ("spearman", "mse", "cc_own_user"):
            assert row[key] == pytest.approx(recorded["student"]["test"][key], abs=1e-9)
    tests = [sorted(i.name for i in read_split(protocol["data"], "test", k)) for k in range(1, 6)]
    assert len({tuple(t) for t in tests}) == 5


def test_the_peer_is_scored_on_each_test_list(protocol: dict[str, Any]) -> None:
    """ONNX Runtime on the same images, done here by hand, gives the same ρ and MSE."""
    session = ort.InferenceSession(str(protocol["peer"]), providers=["CPUExecutionProvider"])
    peer = next(m for m in {r["model"] for r in protocol["result"]["rows"]} if m.startswith("model.onnx"))
    for fold, row in _rows(protocol["result"], peer).items():
        items = read_split(protocol["data"], "test", fold)
        frames = np.stack([resize_frame(cv2.imread(str(i.path)), (32, 32)) for i in items])
        scores = session.run(["score"], {"image": frames, "user": np.zeros(len(items), np.int64)})[0]
        truth = np.array([i.score for i in items])
        assert row["spearman"] == pytest.approx(spearman(scores, truth), abs=1e-6)
        assert row["mse"] == pytest.approx(mse(scores, truth), abs=1e-6)
    caveat = protocol["result"]["peers"][0]["caveat"]
    assert "may have seen these test images" in caveat


def test_the_ablation_changes_only_the_gaze_term(protocol: dict[str, Any]) -> None:
    runs = protocol["out"] / "runs"
    with_gaze = json.loads((runs / "fold_3" / "protocol.json").read_text())
    without = json.loads((runs / "fold_3" / "no-gaze" / "protocol.json").read_text())
    assert with_gaze["loss"].pop("student_gaze") == 2.0 and without["loss"].pop("student_gaze") == 0.0
    assert with_gaze == without
    teacher = runs / "fold_3" / "teacher.safetensors"
    assert (runs / "fold_3" / "no-gaze" / "teacher.safetensors").read_bytes() == teacher.read_bytes()
    ablation = protocol["result"]["ablation"]
    gaze, none = _rows(protocol["result"], STUDENT), _rows(protocol["result"], NO_GAZE)
    for entry in ablation["folds"]:
        k = entry["fold"]
        assert entry["spearman"]["delta"] == pytest.approx(gaze[k]["spearman"] - none[k]["spearman"])
    deltas = [e["cc_own_user"]["delta"] for e in ablation["folds"]]
    assert ablation["delta"]["cc_own_user"]["mean"] == pytest.approx(np.mean(deltas))


def test_the_report_has_the_table_the_anchors_and_their_sources(protocol: dict[str, Any]) -> None:
    report = (protocol["out"] / "report.md").read_text()
    assert "SYNTHETIC data: these figures prove that the harness runs" in report
    for needle in ("| AMNet | as published | 0.677 |", "0.0082", "| MemNet | as published | 0.64 |",
                   "| ResMem-Net | as published | 0.679 |", "| Leonardi et al. | as published | 0.687 |",
                   "| Squalli-Houssaini et al. | as published | 0.72 |", "| Human consistency | as published | 0.68 |",
                   "doi:10.1109/ICCV.2015.275", "doi:10.7717/peerj-cs.767", "arXiv:1804.03115",
                   "Ablation: gaze imitation against none", "may have seen these test images"):
        assert needle in report, needle
    assert (protocol["out"] / "report.html").is_file() and (protocol["out"] / "lamem_spearman.png").is_file()


def test_a_rerun_keeps_finished_splits_resumes_an_interrupted_one_and_agrees(protocol: dict[str, Any]) -> None:
    runs, first = protocol["out"] / "runs", protocol["result"]
    teacher = runs / "fold_5" / "teacher.safetensors"
    stamp = teacher.stat().st_mtime_ns
    (runs / "fold_5" / "student.safetensors").unlink()  # as if fold 5 had stopped after its student's last epoch
    proc = bench("lamem", str(protocol["data"]), "--train", "--ablation", "--folds", "4,5", "--out", str(protocol["out"]), *TRAINING)
    assert proc.returncode == 0, proc.stderr
    assert "split 4: trained already" in proc.stderr and "split 5: training (student)" in proc.stderr
    assert "student: resumed after epoch 1" in proc.stderr
    assert teacher.stat().st_mtime_ns == stamp
    again = json.loads((protocol["out"] / "lamem.json").read_text())
    for model in ("memgaze teacher (resnet50)", STUDENT, NO_GAZE):
        for fold, row in _rows(again, model).items():
            assert row["spearman"] == pytest.approx(_rows(first, model)[fold]["spearman"], abs=1e-9), (model, fold)
    changed = build_config(None, {"epochs_teacher": 1, "epochs_student": 2, "image_size": 32, "batch_size": 8,
                                  "student_backbone": "mobilenet_v3_small"})
    with pytest.raises(MemgazeError, match=r"split 4 .* other settings \(epochs_student\)"):
        train_split(changed, protocol["data"], 4, runs)


def test_bad_requests_are_one_line_errors(tmp_path: Path) -> None:
    from memgaze.bench.lamem import Request, resolve_folds, run_lamem
    from memgaze.train.config import TrainConfig

    data = tmp_path / "data"
    make_demo_dataset(data, count=10, image_size=32, users=1, seed=0, folds=2)
    assert resolve_folds(data, None) == [1, 2]
    (data / "splits" / "val_2.txt").unlink()  # split 2 is incomplete: not a split
    assert resolve_folds(data, None) == [1]
    with pytest.raises(MemgazeError, match=r"split 2, 7 not in .* \(it has 1\)"):
        resolve_folds(data, [2, 7])
    with pytest.raises(MemgazeError, match="holds no complete split"):
        resolve_folds(tmp_path, None)
    request = Request(data=data, out=tmp_path / "out", runs=tmp_path / "out" / "runs", folds=None, train=False,
                      ablation=False, peers=[], device="cpu", batch_size=8)
    with pytest.raises(MemgazeError, match="nothing to evaluate"):
        run_lamem(request, TrainConfig())
    (tmp_path / "out" / "runs" / "fold_1").mkdir(parents=True)
    with pytest.raises(MemgazeError, match="missing checkpoint .*fold_1/teacher.safetensors"):
        run_lamem(request, TrainConfig())
