"""memgaze-bench pipeline: the real runtime pipeline on a real MP4, against the engine alone."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from runtime_fixtures import make_bundle, make_clip

BENCH = str(Path(sys.executable).with_name("memgaze-bench"))


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_bundle(tmp_path_factory.mktemp("bundle"), size=64, personalized=True, int8=True)


def test_pipeline_bench_writes_stages_engine_and_overhead(bundle: Path, tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "clip.mp4", frames=30, size=96)
    out = tmp_path / "bench"
    proc = subprocess.run([BENCH, "pipeline", "--model", str(bundle), "--source", str(clip), "--iters", "20",
                           "--warmup", "2", "--out", str(out)], capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads((out / "pipeline.json").read_text())
    pipeline = result["pipeline"]
    assert pipeline["frames"] == 30 and pipeline["dropped"] == 0  # a file is read at processing speed
    assert set(pipeline["stages"]) == {"capture", "pre", "infer", "post", "sink"}
    assert all(stats["p50_ms"] <= stats["p99_ms"] for stats in pipeline["stages"].values())
    assert "int8" in result["settings"]["backend"]
    assert result["overhead"] == pytest.approx(pipeline["per_frame_ms"] / result["engine"]["mean_ms"])
    assert result["overhead"] > 0 and result["engine"]["fps"] > 0
    report = (out / "report.md").read_text()
    assert "End-to-end runtime" in report and (out / "pipeline_stages.png").stat().st_size > 0


def test_pipeline_bench_refuses_a_live_source(bundle: Path, tmp_path: Path) -> None:
    proc = subprocess.run([BENCH, "pipeline", "--model", str(bundle), "--source", "rtsp://127.0.0.1:9/x",
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "live source" in lines[0] and "Traceback" not in proc.stderr
