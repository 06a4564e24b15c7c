"""memgaze-bench personalization on a real (untrained, MobileNetV3) student and tiny SYNTHETIC demo viewers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from memgaze.train.checkpoint import save_checkpoint
from memgaze.train.models import build_model, default_config

from train_fixtures import tiny_data

BENCH = str(Path(sys.executable).with_name("memgaze-bench"))


def _student(path: Path, users: list[str]) -> Path:
    config = default_config("student", 32, users, backbone="mobilenet_v3_small", backbone_weights="none")
    save_checkpoint(path, build_model(config, pretrained=False), config)
    return path


def test_report_per_user_three_maps_six_metrics_and_figure(tmp_path: Path) -> None:
    data = tiny_data(tmp_path / "demo", count=30, users=2)
    users = sorted(p.name for p in (data / "gaze").iterdir() if p.is_dir())
    checkpoint = _student(tmp_path / "student.safetensors", users)
    out, figure = tmp_path / "bench", tmp_path / "docs" / "example.png"
    proc = subprocess.run([BENCH, "personalization", "--checkpoint", str(checkpoint), "--data", str(data),
                           "--figure", str(figure), "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    result = json.loads((out / "personalization.json").read_text())
    assert result["synthetic"] is True
    assert [r["user"] for r in result["rows"]] == users
    assert [r["other_user"] for r in result["rows"]] == users[::-1]  # each compared with the other
    for row in result["rows"]:
        assert row["images"] >= 2
        for name in ("generic", "personalized", "other"):
            metrics = row[name]
            assert set(metrics) == {"cc", "kld", "sim", "nss", "auc_judd", "sauc"}
            assert -1 <= metrics["cc"] <= 1 and metrics["kld"] >= 0 and 0 <= metrics["sim"] <= 1
            assert 0 <= metrics["auc_judd"] <= 1 and 0 <= metrics["sauc"] <= 1
    # the mean row is the mean of the users' rows
    assert result["mean"]["generic"]["cc"] == pytest.approx(np.mean([r["generic"]["cc"] for r in result["rows"]]))
    report = (out / "report.md").read_text()
    assert "## Personalization" in report and "SYNTHETIC" in report and "sAUC" in report
    assert (out / "personalization.png").stat().st_size > 10_000
    assert figure.read_bytes() == (out / "personalization.png").read_bytes()


def test_a_checkpoint_with_one_user_is_a_one_line_error(tmp_path: Path) -> None:
    data = tiny_data(tmp_path / "demo", count=12, users=1)
    checkpoint = _student(tmp_path / "student.safetensors", ["solo"])
    proc = subprocess.run([BENCH, "personalization", "--checkpoint", str(checkpoint), "--data", str(data),
                           "--out", str(tmp_path / "bench")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert [line for line in proc.stderr.splitlines() if line.startswith("error:")] == [
        f"error: {checkpoint} knows 1 user(s); the report compares a user with another: need two"]
