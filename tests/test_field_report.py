"""``memgaze-checks``: the field report on this machine (a real bundle, every backend that runs here judged by the gate)
and on the system files of two Jetsons."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from memgaze.machine import jetpack_of, jetson, l4t_release
from memgaze.runtime.bundle import load_bundle
from memgaze.runtime.field_report import field_report
from runtime_fixtures import make_bundle

JETSONS = Path(__file__).parent / "data" / "jetson"


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_bundle(tmp_path_factory.mktemp("bundle"), size=64, personalized=True, int8=True)


def test_on_this_machine_the_built_in_model_passes_on_every_backend(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    done = subprocess.run([sys.executable, "-c", "from memgaze.runtime.checks_cli import main; main()", "--json", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(out.read_text())
    runs = {(r["backend"], r["precision"]): r for r in report["backends"]}
    assert {("onnxruntime (cpu)", "fp32"), ("onnxruntime (cpu)", "int8")} <= set(runs)
    for precision in ("fp32", "int8"):  # against the FP32 outputs stored at export, on its 32 gate samples
        run = runs[("onnxruntime (cpu)", precision)]
        assert run["verdict"] == "pass" and run["latency_ms"] > 0 and "on 32 " in run["figures"]
    assert runs[("onnxruntime (cpu)", "int8")]["file"] == "model.int8.ort.onnx"
    assert runs[("tensorrt", "-")]["verdict"].startswith("not run: tensorrt is not installed")
    assert report["software"]["numpy"] and report["software"]["opencv"]["version"]
    assert report["bundle"]["checksums"] == "verified" and report["bundle"]["model"].startswith("memgaze-lite0-resmem")
    checks = report["bundle"]["tensorrt_parser_checks"]
    assert set(checks) == {"model.onnx", "model.int8.onnx"} and all(c["passed"] for c in checks.values())
    assert report["gate"]["min_spearman"] > 0
    for heading in ("memgaze-checks", "machine", "OpenCV", "ONNX Runtime", "backends on the gate samples", "onnxruntime (cpu)"):
        assert heading in done.stdout
    assert "torch" not in json.dumps(report["software"]).replace("pytorch", "")  # nothing of torch is asked for


def test_a_failing_backend_fails_the_command(bundle: Path, tmp_path: Path) -> None:
    import numpy as np

    broken = tmp_path / "bundle"
    subprocess.run(["cp", "-r", str(bundle), str(broken)], check=True)
    from memgaze.gate_samples import read_samples, write_samples
    from memgaze.manifest import read_manifest, update_manifest

    samples = read_samples(broken, read_manifest(broken))
    samples.scores = np.ascontiguousarray(samples.scores[::-1])  # FP32 outputs that no backend reproduces
    write_samples(broken, samples, "held-out frames")
    update_manifest(broken, lambda m: None, added=["gate_samples.npz"])
    done = subprocess.run([sys.executable, "-c", "from memgaze.runtime.checks_cli import main; main()", str(broken),
                           "--json", str(tmp_path / "r.json")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and "FAIL: Spearman" in done.stdout


@pytest.mark.parametrize("device, model, l4t, jetpack", [
    ("orin-nano-jp62", "NVIDIA Jetson Orin Nano Engineering Reference Developer Kit Super", "36.4.7", "6.1 / 6.2"),
    ("agx-orin-jp512", "NVIDIA Jetson AGX Orin Developer Kit", "35.4.1", "5.1.2"),
])
def test_a_jetsons_files_give_its_model_and_release(bundle: Path, device: str, model: str, l4t: str, jetpack: str) -> None:
    report = field_report(load_bundle(bundle), JETSONS / device, run_backends=False)
    found = report["machine"]["jetson"]
    assert (found["model"], found["l4t"], found["jetpack"]) == (model, l4t, jetpack)
    assert report["machine"]["cpu"] == "ARMv8 Processor rev 1 (v8l)" and "asimddp" in report["machine"]["cpu_flags"]
    assert report["backends"] == [] and report["cameras"] == (["/dev/video0", "/dev/video1"] if device == "orin-nano-jp62" else [])


def test_release_parsing_and_not_a_jetson(tmp_path: Path) -> None:
    assert l4t_release("# R36 (release), REVISION: 3.0, GCID: 36923193, BOARD: generic") == "36.3.0"
    assert jetpack_of("36.3.0") == "6.0" and jetpack_of("99.1.0") is None
    assert l4t_release("Ubuntu 22.04") is None and jetson(tmp_path) is None
