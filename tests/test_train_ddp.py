"""torchrun with 2 CPU processes (gloo): DistributedDataParallel training of both stages."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from train_fixtures import SCRIPT, TINY, tiny_data


def test_torchrun_two_processes(tmp_path: Path) -> None:
    data = tiny_data(tmp_path / "demo")
    out = tmp_path / "run"
    torchrun = Path(sys.executable).with_name("torchrun")
    command = [
        str(torchrun), "--standalone", "--nproc_per_node", "2", SCRIPT,
        "--data", str(data), "--out", str(out), "--epochs-teacher", "1", "--epochs-student", "1", *TINY,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(command, capture_output=True, text=True, timeout=180, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"teacher", "student", "macs_ratio"} <= metrics.keys()
    assert (out / "student.safetensors").is_file()
    # rank 0 alone prints: one epoch line per stage
    assert proc.stderr.count("teacher      1/1") == 1, proc.stderr
    log = (out / "log.csv").read_text().splitlines()
    assert len(log) == 3  # header + one row per stage, written once
