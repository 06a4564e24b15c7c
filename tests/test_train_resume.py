"""A killed run resumed with --resume ends exactly where an uninterrupted run ends; NaN stops cleanly."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from train_fixtures import SCRIPT, TINY, assert_one_line_error, tiny_data, train

EPOCHS = ["--stage", "teacher", "--epochs-teacher", "2", "--seed", "3"]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_data(tmp_path_factory.mktemp("data") / "demo")


def _epoch(state: Path) -> int:
    return int(torch.load(state, map_location="cpu", weights_only=True)["epoch"])


@pytest.fixture(scope="module")
def whole(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("whole")
    assert train("--data", str(data), "--out", str(out), *EPOCHS, *TINY).returncode == 0
    return out


def test_kill_and_resume_matches_uninterrupted(data: Path, whole: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"

    state = broken / "state" / "teacher.pt"
    proc = subprocess.Popen([SCRIPT, "--data", str(data), "--out", str(broken), *EPOCHS, *TINY],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while not state.is_file() and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert _epoch(state) == 1, "the kill came too late to test anything"
    assert not (broken / "teacher.safetensors").exists()

    resumed = train("--data", str(data), "--out", str(broken), *EPOCHS, *TINY, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed after epoch 1" in resumed.stderr
    a, b = load_file(whole / "teacher.safetensors"), load_file(broken / "teacher.safetensors")
    assert a.keys() == b.keys()
    assert max(float((a[k].double() - b[k].double()).abs().max()) for k in a if a[k].numel()) <= 1e-6
    ma = json.loads((whole / "metrics.json").read_text())["teacher"]["test"]
    mb = json.loads((broken / "metrics.json").read_text())["teacher"]["test"]
    for key in ("spearman", "pearson", "mse"):
        assert mb[key] == pytest.approx(ma[key], abs=1e-6)
    log = (broken / "log.csv").read_text().splitlines()
    assert [line.split(",")[:2] for line in log[1:]] == [["teacher", "1"], ["teacher", "2"]]


def test_nan_loss_stops_and_keeps_last_good_checkpoint(data: Path, whole: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    shutil.copytree(whole, out)
    state = out / "state" / "teacher.pt"
    before = state.read_bytes(), (out / "teacher.safetensors").read_bytes()

    config = tmp_path / "nan.json"
    config.write_text('{"optim": {"lr_teacher": NaN}}')
    proc = train("--data", str(data), "--out", str(out), *EPOCHS, *TINY, "--config", str(config))
    assert_one_line_error(proc, "loss is nan")
    assert "last good checkpoint kept" in proc.stderr
    assert (state.read_bytes(), (out / "teacher.safetensors").read_bytes()) == before
