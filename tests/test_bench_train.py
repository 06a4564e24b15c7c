"""memgaze-bench train: the three training steps run and are reported as images/s."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from memgaze.bench.cli import app
from memgaze.bench.train_speed import ROWS


def test_train_speed_cli_writes_rows_and_report(tmp_path: Path) -> None:
    import json

    result = CliRunner().invoke(app, ["train", "--image-size", "32", "--batch", "2", "--steps", "1", "--warmup", "0",
                                      "--device", "cpu", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "train.json").read_text())
    assert [r["step"] for r in data["rows"]] == list(ROWS)
    for row in data["rows"]:
        assert row["p50_ms"] <= row["p90_ms"] <= row["p99_ms"]
        assert row["images_per_s"] == pytest.approx(2 * 1000 / row["mean_ms"])
    # ResNet-50 against the default student, EfficientNet-Lite0: about 11x the MACs at any input size
    assert data["models"]["macs"]["teacher"] > 8 * data["models"]["macs"]["student"]
    assert data["settings"]["device"] == "cpu"
    md = (tmp_path / "report.md").read_text()
    assert all(f"| {name} |" in md for name in ROWS)
    assert (tmp_path / "train_speed.png").read_bytes()[:4] == b"\x89PNG"
    assert "data:image/png;base64," in (tmp_path / "report.html").read_text()


def test_train_speed_rejects_bad_size() -> None:
    result = CliRunner().invoke(app, ["train", "--image-size", "30", "--out", "/nonexistent"])
    assert result.exit_code != 0
    assert "multiple of 32" in str(result.exception)  # the models' rule (memgaze.train.models.map_size), not another
