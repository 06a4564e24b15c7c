"""Report writers: JSON keys, one Markdown row per measurement, skipped rows with reasons, HTML with inlined PNGs."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest

from memgaze.bench.cli import write_report
from memgaze.bench.latency import ratios
from memgaze.bench.machine import describe_machine, machine_line, machine_slug
from memgaze.bench.report import Document, Figure, Para, Table, plot_scatter, to_html, to_markdown

ROW_KEYS = {"backend", "precision", "batch", "p50_ms", "p90_ms", "p99_ms", "mean_ms", "std_ms", "fps"}


def _row(model: str, backend: str, precision: str, batch: int, mean: float) -> dict:
    return {"model": model, "backend": backend, "precision": precision, "batch": batch, "p50_ms": mean * 0.95,
            "p90_ms": mean * 1.1, "p99_ms": mean * 1.3, "mean_ms": mean, "std_ms": mean * 0.1,
            "fps": batch * 1000 / mean, "threads": None, "iters": 10}


def _latency_result() -> dict:
    rows = [_row("student", "onnxruntime", "fp32", 1, 4.0), _row("student", "onnxruntime", "int8", 1, 2.0),
            _row("student", "torch", "fp32", 1, 6.0), _row("teacher", "torch", "fp32", 1, 60.0)]
    return {
        "machine": describe_machine(),
        "rows": rows,
        "skipped": [{"model": "student", "backend": "tensorrt", "precision": "int8", "batch": 1,
                     "reason": "TensorRT is not installed on this machine"}],
        "ratios": ratios(rows),
        "settings": {"bundle": "b", "input_size": [64, 64], "iters": 10, "warmup": 1, "rounds": 2, "threads": None, "seed": 0},
    }


def test_machine_description_has_the_documented_keys() -> None:
    machine = describe_machine()
    assert {"cpu", "cpu_cores", "memory_gib", "gpus", "jetson", "versions", "os", "arch", "slug"} <= set(machine)
    assert machine["cpu_cores"] >= 1 and machine["memory_gib"] > 0
    assert {"python", "numpy", "torch", "onnxruntime", "tensorrt", "opencv"} <= set(machine["versions"])
    assert machine["versions"]["numpy"] is not None
    assert machine["versions"]["tensorrt"] is None or isinstance(machine["versions"]["tensorrt"], str)
    assert machine["slug"] == machine_slug() and machine["arch"] in machine["slug"]
    assert machine["cpu"] in machine_line(machine)


def test_ratios_are_speedups_of_the_candidate() -> None:
    found = {q["comparison"]: q["speedup"] for q in ratios(_latency_result()["rows"])}
    assert found["student vs teacher"] == pytest.approx(10.0)
    assert found["INT8 vs FP32"] == pytest.approx(2.0)
    assert "TensorRT vs ONNX Runtime" not in found  # no TensorRT row measured


def test_latency_report_files(tmp_path: Path) -> None:
    result = _latency_result()
    (tmp_path / "latency.json").write_text(json.dumps(result))
    page = write_report(tmp_path)
    md = (tmp_path / "report.md").read_text()
    for row in result["rows"]:  # a table row per measurement
        pattern = rf"^\| {row['model']} \| {row['backend']} \| {row['precision']} \| [^|]+ \| {row['batch']} \|"  # file column
        assert len(re.findall(pattern, md, re.MULTILINE)) == 1
    assert "TensorRT is not installed on this machine" in md  # skipped row with its reason
    assert "student vs teacher" in md and "10.00" in md
    png = (tmp_path / "latency.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    text = page.read_text()
    assert base64.b64encode(png).decode() in text  # the PNG is inlined, the page is self-contained
    assert "src='latency.png'" not in text
    assert json.loads((tmp_path / "latency.json").read_text())["rows"][0].keys() >= ROW_KEYS


def test_renderers_escape_and_format(tmp_path: Path) -> None:
    plot_scatter([("a", 1.0, 0.5), ("b", 2.0, 0.7)], tmp_path / "s.png", "ms", "rho", "t")
    doc = Document("T", "m <x>", [Table(["k", "v"], [["a|b", 0.123456], ["c", None]]), Para("<b>"),
                                   Figure("s.png", "cap")])
    md = to_markdown(doc)
    assert "| a\\|b | 0.123 |" in md and "| c | – |" in md and "![cap](s.png)" in md
    page = to_html(doc, tmp_path)
    assert "&lt;b&gt;" in page and "m &lt;x&gt;" in page and "data:image/png;base64," in page


def test_report_needs_results(tmp_path: Path) -> None:
    from memgaze.errors import MemgazeError

    with pytest.raises(MemgazeError, match="no benchmark result"):
        write_report(tmp_path)
