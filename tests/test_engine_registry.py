"""Registering a TensorRT plan in a real bundle: manifest schema (old versions read), atomic updates, the
device-side FP32 gate on the bundle's samples, and a failed build that leaves the bundle as it was.

No TensorRT here: the steps that need it (the build itself, running the plan) are replaced where
named; everything around them (manifest, checksums, files, gate) is the real code.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from memgaze.errors import MemgazeError
from memgaze.gate_samples import check_against_fp32, read_samples
from memgaze.manifest import SCHEMA_VERSION, EngineEntry, read_manifest, sha256_file, update_manifest
from memgaze.runtime import engines
from memgaze.runtime.backends.onnxruntime_backend import OnnxRuntimeBackend
from memgaze.runtime.backends.tensorrt_backend import select_engine
from memgaze.runtime.bundle import load_bundle
from memgaze.trt.build import BuiltPlan
from memgaze.trt.fit import Machine
from runtime_fixtures import make_bundle

HERE = Machine("8.7", "10.3.0", gpu="Orin")


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_bundle(tmp_path_factory.mktemp("bundle"), size=64, personalized=True, int8=True)


@pytest.fixture
def bundle(pristine: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(pristine, tmp_path / "bundle"))


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file() and p.name != ".manifest.lock"}


def test_schema_1_manifest_is_read_and_upgraded(bundle: Path) -> None:
    raw = json.loads((bundle / "manifest.json").read_text())
    raw["schema_version"] = 1
    raw.pop("gate_samples")
    raw["engines"] = [{"file": "old.plan", "precision": "int8", "gpu": "unknown-gpu", "compute_capability": "sm_87",
                       "tensorrt": "8.6.2", "built": "2025-01-01", "build_seconds": 60.0}]
    raw["trtexec"] = "trtexec --onnx=model.int8.onnx --int8"
    (bundle / "manifest.json").write_text(json.dumps(raw))
    manifest = read_manifest(bundle)
    assert manifest.schema_version == SCHEMA_VERSION and manifest.gate_samples is None
    assert manifest.engines == [EngineEntry(file="old.plan", precision="int8", compute_capability="8.7", tensorrt="8.6.2",
                                            gpu="unknown-gpu", built="2025-01-01", build_seconds=60.0)]
    assert manifest.extra["trtexec"].startswith("trtexec")  # unknown keys survive a rewrite
    assert manifest.to_dict()["trtexec"] == raw["trtexec"]
    raw["schema_version"] = SCHEMA_VERSION + 1
    (bundle / "manifest.json").write_text(json.dumps(raw))
    with pytest.raises(MemgazeError, match="newer than this memgaze understands"):
        read_manifest(bundle)


@pytest.mark.parametrize("edit", [{"schema_version": 99}, {"schema": 99}, {"schema_version": "3"}, {"schema_version": 2.1}])
def test_a_manifest_newer_than_the_code_is_refused_in_one_line(bundle: Path, edit: dict, monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    from memgaze.runtime.engine_cli import main

    raw = json.loads((bundle / "manifest.json").read_text())
    (bundle / "manifest.json").write_text(json.dumps({**raw, **edit}))
    value = next(iter(edit.values()))
    with pytest.raises(MemgazeError) as caught:
        load_bundle(bundle)
    assert str(caught.value) == (f"{bundle / 'manifest.json'} has schema version {value}, newer than this memgaze understands "
                                 f"({SCHEMA_VERSION}); upgrade memgaze (pip install --upgrade memgaze)")
    monkeypatch.setattr(sys, "argv", ["memgaze-engine", str(bundle), "--print-trtexec", "--trt-version", "10.3"])
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2 and capsys.readouterr().err == f"error: {caught.value}\n"


@pytest.mark.parametrize("value", [None, "two", True, float("nan")])
def test_a_schema_that_is_no_version_number_is_refused_in_one_line(bundle: Path, value: object) -> None:
    raw = json.loads((bundle / "manifest.json").read_text())
    (bundle / "manifest.json").write_text(json.dumps({**raw, "schema_version": value}))
    with pytest.raises(MemgazeError, match=r"manifest.json: schema_version .* is not a schema version number$"):
        load_bundle(bundle)


def test_update_is_atomic_and_a_failed_change_leaves_the_manifest_alone(bundle: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = snapshot(bundle)

    def broken(manifest: object) -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        update_manifest(bundle, broken)
    assert snapshot(bundle) == before

    def interrupted(src: object, dst: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)  # Ctrl-C at the rename of manifest.json
    with pytest.raises(KeyboardInterrupt):
        update_manifest(bundle, lambda m: m.precisions.append("fp16"))
    monkeypatch.undo()
    assert snapshot(bundle) == before and not [p for p in bundle.iterdir() if p.name.endswith(".tmp")]


def test_gate_samples_are_checksummed_and_judge_a_model_against_fp32(bundle: Path) -> None:
    loaded = load_bundle(bundle)
    samples = read_samples(bundle, loaded.manifest)
    assert samples.frames.dtype == np.uint8 and samples.frames.shape == (32, 64, 64, 3)
    with OnnxRuntimeBackend(loaded, "fp32") as fp32:
        report = check_against_fp32(fp32.infer, samples)
    assert report.passed and report.spearman == 1.0 and report.heatmap_cc > 0.9999
    with OnnxRuntimeBackend(loaded, "fp32") as fp32:
        reversed_scores = check_against_fp32(lambda x, u: (1.0 - fp32.infer(x, u)[0], fp32.infer(x, u)[1]), samples)
    assert not reversed_scores.passed and reversed_scores.spearman == pytest.approx(-1.0)
    (bundle / "gate_samples.npz").write_bytes(b"not the samples")
    with pytest.raises(MemgazeError, match="gate_samples.npz does not match the sha256"):
        load_bundle(bundle)


def fake_build(data: bytes):  # noqa: ANN201 - replaces memgaze.runtime.engines._build (the TensorRT call)
    return lambda root, recipe, cache_path: BuiltPlan(data=data, seconds=1.0, inputs=[], timing_cache=b"cache", layers=None)


def test_build_registers_checksummed_plan_and_a_rebuild_replaces_it(bundle: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engines, "machine_or_fail", lambda: HERE)
    monkeypatch.setattr(engines, "_check", lambda bundle, entry: None)  # running a plan needs TensorRT
    monkeypatch.setattr(engines, "_build", fake_build(b"plan one"))
    first = engines.ensure_plan(bundle)
    assert first.file.startswith("model.sm87.trt10.3.0.int8.") and first.source == "model.int8.onnx" and first.max_batch == 8
    loaded = load_bundle(bundle)  # verifies the plan's sha256
    assert loaded.manifest.files[first.file]["bytes"] == len(b"plan one") and "int8" in loaded.manifest.precisions
    assert select_engine(loaded, None, HERE)[0] == first
    assert (bundle / "timing.sm87.orin.trt10.3.0.cache").read_bytes() == b"cache"
    assert engines.ensure_plan(bundle) == first  # registered and fitting: no rebuild
    monkeypatch.setattr(engines, "_build", fake_build(b"plan two"))
    second = engines.ensure_plan(bundle, engines.BuildRequest(force=True))
    assert second.file != first.file and not (bundle / first.file).exists()
    assert [e.file for e in load_bundle(bundle).engines] == [second.file]


def test_a_failed_check_leaves_the_bundle_as_it_was(bundle: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = snapshot(bundle)
    monkeypatch.setattr(engines, "machine_or_fail", lambda: HERE)
    monkeypatch.setattr(engines, "_build", fake_build(b"not a real plan"))
    with pytest.raises((MemgazeError, ImportError)):  # the FP32 check needs TensorRT to run the plan
        engines.ensure_plan(bundle)
    assert snapshot(bundle) == before


def test_degraded_plan_is_refused_unless_allowed(bundle: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from memgaze.gate import compare_outputs

    before = snapshot(bundle)
    scores = np.linspace(0, 1, 4)
    bad = compare_outputs((scores, np.ones((4, 1, 2, 2))), (scores[::-1], np.ones((4, 1, 2, 2))), "gate samples")
    monkeypatch.setattr(engines, "machine_or_fail", lambda: HERE)
    monkeypatch.setattr(engines, "_build", fake_build(b"plan"))
    monkeypatch.setattr(engines, "_check", lambda bundle, entry: bad)
    with pytest.raises(MemgazeError, match=r"^TensorRT plan model\.\S+\.plan is too far from FP32: Spearman -1\.0000 < 0\.95; "
                       r"max \|Δscore\|/spread 2\.6833 > 0\.6 \(Spearman -1\.0000, .* on 4 gate samples\); "
                       r"try --precision fp16 or fp32, or pass --allow-degraded to keep it$"):
        engines.ensure_plan(bundle)
    assert snapshot(bundle) == before
    kept = engines.ensure_plan(bundle, engines.BuildRequest(allow_degraded=True))
    assert kept.accuracy is not None and kept.accuracy["passed"] is False
    assert load_bundle(bundle).engines[0].accuracy == kept.accuracy


def test_a_hand_built_plan_is_registered_like_a_built_one(bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hand_built = tmp_path / "model.trt10.3.0.int8.plan"  # what `memgaze-engine --print-trtexec`'s command writes
    hand_built.write_bytes(b"trtexec output")
    monkeypatch.setattr(engines, "machine_or_fail", lambda: HERE)
    with pytest.raises(MemgazeError, match="does not exist"):
        engines.register_plan(bundle, tmp_path / "missing.plan")
    before = snapshot(bundle)
    with pytest.raises((MemgazeError, ImportError)):  # loading it needs TensorRT: refused, bundle untouched
        engines.register_plan(bundle, hand_built)
    assert snapshot(bundle) == before
    monkeypatch.setattr(engines, "_check", lambda bundle, entry: None)
    entry = engines.register_plan(bundle, hand_built)
    assert entry.file.startswith("model.sm87.trt10.3.0.int8.") and (bundle / entry.file).read_bytes() == b"trtexec output"
    assert load_bundle(bundle).engines == [entry]


def test_first_use_build_in_memgaze_run(bundle: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """`--backend auto` on a GPU without a fitting plan says so and builds (here the build itself fails: no TensorRT),
    then falls back to ONNX Runtime; `--backend tensorrt` refuses in one line; `--no-build` never tries."""
    from memgaze.runtime.backends import open_backend
    from memgaze.trt import probe

    monkeypatch.setattr(probe, "probe_machine", lambda device=0: (HERE, ""))
    monkeypatch.setattr(engines, "machine_or_fail", lambda: HERE)
    loaded = load_bundle(bundle)
    with open_backend(loaded, "auto", build=True) as backend:
        assert backend.name == "onnxruntime"
    err = capsys.readouterr().err
    assert "no TensorRT plan" in err and "building one now" in err and "TensorRT is not installed here" in err
    with pytest.raises(MemgazeError, match="TensorRT is not installed here"):
        open_backend(loaded, "tensorrt", build=True)
    with pytest.raises(MemgazeError, match=f"build one here with: memgaze-engine {bundle}"):
        open_backend(loaded, "tensorrt", build=False)
    capsys.readouterr()
    with open_backend(loaded, "auto", build=False) as backend:
        assert backend.name == "onnxruntime"
    assert "building" not in capsys.readouterr().err


READ_ONLY_BUILD = """
import sys
from pathlib import Path
from memgaze.runtime import engines
from memgaze.runtime.bundle import load_bundle
from memgaze.runtime.backends.tensorrt_backend import select_engine
from memgaze.trt.build import BuiltPlan
from memgaze.trt.fit import Machine

here = Machine("8.7", "10.3.0", gpu="Orin")
engines.machine_or_fail = lambda: here
engines._check = lambda bundle, entry: None  # running a plan needs TensorRT
engines._build = lambda root, recipe, cache: BuiltPlan(data=b"plan", seconds=1.0, inputs=[], timing_cache=b"t", layers=None)
root = Path(sys.argv[1])
entry = engines.ensure_plan(root)
loaded = load_bundle(root)
assert select_engine(loaded, None, here)[0] == entry and engines.ensure_plan(root) == entry  # found again: no rebuild
print(loaded.plan_path(entry))
"""


def test_a_read_only_bundle_keeps_its_plans_in_the_user_cache(pristine: Path, tmp_path: Path) -> None:
    """A bundle this user cannot write (a read-only copy; as root, the build runs without the capabilities that
    override file permissions): the plan and its registration go to $XDG_CACHE_HOME/memgaze/plans/<manifest sha>/
    and are found there by the next load; the bundle is untouched."""
    bundle = Path(shutil.copytree(pristine, tmp_path / "bundle"))
    cache = tmp_path / "cache"
    for path in [bundle, *bundle.iterdir()]:
        path.chmod(0o555 if path.is_dir() else 0o444)
    before = snapshot(bundle)
    unprivileged = ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner"] if os.geteuid() == 0 else []
    if unprivileged and shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv (util-linux): cannot make a folder read-only for this process")
    try:
        proc = subprocess.run([*unprivileged, sys.executable, "-c", READ_ONLY_BUILD, str(bundle)], capture_output=True,
                              text=True, env={**os.environ, "XDG_CACHE_HOME": str(cache)}, timeout=120)
        assert proc.returncode == 0, proc.stderr
        plan = Path(proc.stdout.strip().splitlines()[-1])
        assert plan.parent == cache / "memgaze" / "plans" / sha256_file(bundle / "manifest.json")[:16]
        assert plan.read_bytes() == b"plan" and snapshot(bundle) == before
        assert json.loads((plan.parent / "engines.json").read_text())["engines"][0]["file"] == plan.name
    finally:
        for path in [bundle, *bundle.iterdir()]:
            path.chmod(0o755 if path.is_dir() else 0o644)
