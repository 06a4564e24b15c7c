"""memgaze-bench photos: decode alone, memgaze end to end, ResMem and the CPU floor, side by side, on real JPEG files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

from runtime_fixtures import make_bundle, synthetic_frame

BENCH = str(Path(sys.executable).with_name("memgaze-bench"))


def test_photos_bench_measures_every_row_and_its_ratios(tmp_path: Path) -> None:
    pytest.importorskip("resmem", reason="ResMem is not installed (pip install 'memgaze[resmem]')")
    bundle = make_bundle(tmp_path / "bundle", size=64, personalized=False, int8=True)
    photos = tmp_path / "photos" / "album"
    photos.mkdir(parents=True)
    for i in range(3):
        cv2.imwrite(str(photos / f"{i}.jpg"), cv2.resize(synthetic_frame(i, 96), (900, 600), interpolation=cv2.INTER_CUBIC))
    out = tmp_path / "bench"
    proc = subprocess.run([BENCH, "photos", "--model", str(bundle), "--source", str(tmp_path / "photos"), "--passes", "2",
                           "--rounds", "2", "--ray-workers", "", "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads((out / "photos.json").read_text())
    assert result["settings"]["photos"] == 3 and result["settings"]["megapixels"] == [0.54, 0.54]
    assert result["decode"]["photos"] == 6 and result["memgaze"]["photos"] == 6 and result["resmem"]["photos"] == 3
    assert result["decode"]["rounds"] == 2 and result["ray"] == []
    for row in ("decode", "memgaze", "resmem"):
        low, high = result[row]["range"]
        assert 0 < low <= result[row]["photos_per_s"] <= high
    cpu = result["cpu_ms_per_photo"]
    assert all(cpu[stage] > 0 for stage in ("decode", "resize", "engine"))
    ratios = result["ratios"]
    assert ratios["memgaze_vs_decode"] == pytest.approx(result["memgaze"]["photos_per_s"] / result["decode"]["photos_per_s"])
    assert ratios["memgaze_vs_resmem"] == pytest.approx(result["memgaze"]["photos_per_s"] / result["resmem"]["photos_per_s"])
    assert ratios["floor_vs_decode"] == pytest.approx(cpu["decode"] / (cpu["decode"] + cpu["resize"] + cpu["engine"]))
    assert ratios["memgaze_vs_floor"] == pytest.approx(ratios["memgaze_vs_decode"] / ratios["floor_vs_decode"])
    assert cpu["floor_photos_per_s"] > 0  # the median round's: cores × 1000 ÷ that round's summed CPU ms
    report = (out / "report.md").read_text()
    assert "Photo collections: photos per second" in report and "CPU floor" in report and "ResMem" in report
