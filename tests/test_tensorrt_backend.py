"""The TensorRT backend's own logic, executed: the CUDA context around every use, buffers allocated once, batches as
slices, a clean exit without close(), threads, the probe, and ``auto``'s fallbacks.

TensorRT and pycuda do not run here: ``tests/fakes/`` holds recorders of the parts of their documented APIs the
backend calls (put on PYTHONPATH only in this file's subprocesses). The bundles, manifests, checksums, fit rule, ONNX
Runtime fallback and the whole runtime around the backend are the real code.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from memgaze.errors import MemgazeError
from memgaze.manifest import EngineEntry, update_manifest
from memgaze.runtime import backends
from memgaze.runtime.bundle import load_bundle
from memgaze.trt import probe
from memgaze.trt.fit import Machine
from runtime_fixtures import make_bundle

FAKES = Path(__file__).parent / "fakes"
HERE = Machine("8.7", "10.3.0", gpu="Fake Orin")
PLAN = "model.sm87.trt10.3.0.int8.fake.plan"


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_bundle(tmp_path_factory.mktemp("bundle"), size=64, personalized=True, int8=True)


def with_plan(pristine: Path, folder: Path, max_batch: int = 4, data: bytes | None = None) -> Path:
    """A copy of the bundle with a registered plan for ``HERE`` (a fake plan: JSON the fake TensorRT reads)."""
    bundle = Path(shutil.copytree(pristine, folder / "bundle"))
    spec = {"max_batch": max_batch, "size": [64, 64], "map": [8, 8], "user": True}
    (bundle / PLAN).write_bytes(data if data is not None else json.dumps(spec).encode())
    entry = EngineEntry(file=PLAN, precision="int8", compute_capability="8.7", tensorrt="10.3.0", gpu="Fake Orin", max_batch=8)

    def add(manifest: object) -> None:
        manifest.engines.append(entry)  # type: ignore[attr-defined]

    update_manifest(bundle, add, added=[PLAN])
    return bundle


SCRIPT = r"""
import json, sys, threading
from concurrent.futures import ThreadPoolExecutor
import numpy as np
import memgaze

model = memgaze.load(sys.argv[1], backend="tensorrt", user="alice")
rng = np.random.default_rng(0)
frames = [rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for _ in range(7)]
got = [p.score for p in model.predict(frames)]                   # 7 frames: batches of 4 and 3
got += [model.predict(frames[0]).score]                          # then batch 1
with ThreadPoolExecutor(2) as pool:                              # from worker threads, as a web server would
    got += list(pool.map(lambda f: model.predict(f).score, frames[:4]))
want = [f.mean() / 255 + 0.01 for f in frames] + [frames[0].mean() / 255 + 0.01] + [f.mean() / 255 + 0.01 for f in frames[:4]]
print(json.dumps({"describe": model.describe(), "max_error": float(np.abs(np.array(got) - np.array(want)).max())}))
if sys.argv[2] == "close-elsewhere":
    threading.Thread(target=model.close).start()
# no close() otherwise: the finalizer must release everything before pycuda's exit check
"""


def run_script(bundle: Path, mode: str) -> tuple[subprocess.CompletedProcess[str], dict, dict]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(FAKES), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(bundle), mode], capture_output=True, text=True, env=env, timeout=120)
    record = next((json.loads(line.split(" ", 1)[1]) for line in done.stderr.splitlines() if line.startswith("FAKE-PYCUDA ")), {})
    result = json.loads(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else {}
    return done, result, record


@pytest.mark.parametrize("mode", ["never-closed", "close-elsewhere"])
def test_context_is_released_at_exit_and_buffers_are_allocated_once(pristine: Path, tmp_path: Path, mode: str) -> None:
    bundle = with_plan(pristine, tmp_path)
    done, result, record = run_script(bundle, mode)
    assert done.returncode == 0, done.stderr[-2000:]
    assert result["max_error"] < 1e-5  # every frame of every batch size lines up with its own output
    assert "batch up to 4" in result["describe"]  # the plan's own profile, not the manifest's max_batch 8
    assert record["leftover_pushed"] == 0 and record["push"] == record["pop"] > 0  # nothing left pushed on any thread
    assert record["threads"] >= 2 and record["detach"] == 1 and record["retain"] == 1
    assert record["alloc"] == 4 and record["free"] == 4 and record["leaked_buffers"] == 0  # image, user, score, heatmap: once


def test_a_plan_that_fits_but_does_not_load_is_skipped_by_auto(pristine: Path, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    bundle = with_plan(pristine, tmp_path, data=b"not a plan")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(FAKES), os.environ.get("PYTHONPATH", "")])}
    script = "import sys, memgaze; m = memgaze.load(sys.argv[1]); print(m.describe())"
    done = subprocess.run([sys.executable, "-c", script, str(bundle)], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("onnxruntime int8")
    assert f"skipping TensorRT plan {PLAN}: it does not load here (TensorRT could not deserialize" in done.stderr
    script = "import sys, memgaze; memgaze.load(sys.argv[1], backend='tensorrt')"
    done = subprocess.run([sys.executable, "-c", script, str(bundle)], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode != 0 and f"TensorRT plan {PLAN} does not load here" in done.stderr


def test_probe_refuses_a_machine_without_pycuda_before_any_build(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(probe, "tensorrt_module", lambda: SimpleNamespace(Builder=object, __version__="10.3.0"))
    monkeypatch.setitem(sys.modules, "pycuda", None)  # not installed
    monkeypatch.setitem(sys.modules, "pycuda.driver", None)
    machine, why = probe.probe_machine()
    assert machine is None and why.startswith("pycuda does not import") and "memgaze[jetson]" in why


def test_without_onnxruntime_the_fallback_is_one_line_naming_the_install(pristine: Path, tmp_path: Path) -> None:
    script = ("import sys; sys.modules['onnxruntime'] = None\n"
              "from memgaze.errors import run_cli\n"
              "import memgaze\n"
              "run_cli(lambda: memgaze.load(sys.argv[1]))")
    done = subprocess.run([sys.executable, "-c", script, str(pristine)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    line = done.stderr.strip()
    assert "\n" not in line and "ONNX Runtime is not installed" in line and "memgaze[jetson]" in line
