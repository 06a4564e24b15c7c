"""memgaze-engine and the console entry points in subprocesses: no torch or onnx imported, one-line errors,
the trtexec command per TensorRT version, and a missing OpenCV named in one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from runtime_fixtures import make_bundle

BIN = Path(sys.executable).with_name
BLOCKER = '''
import atexit, os, sys

class _Blocker:
    """Makes the imports named in MEMGAZE_BLOCK fail, as on a Jetson without them."""

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in os.environ["MEMGAZE_BLOCK"].split(","):
            raise ImportError(f"No module named {name!r} (blocked by the test)", name=name)
        return None

sys.meta_path.insert(0, _Blocker())

@atexit.register
def _report():
    with open(os.environ["MEMGAZE_MODULES_REPORT"], "w") as handle:
        handle.write(" ".join(sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "onnx", "cv2"))))
'''


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_bundle(tmp_path_factory.mktemp("bundle"), size=64, personalized=True, int8=True)


def run(script: str, args: list[str], tmp_path: Path, block: str = "torch,onnx") -> tuple[subprocess.CompletedProcess[str], str]:
    blocker = tmp_path / "blocker"
    blocker.mkdir(exist_ok=True)
    (blocker / "sitecustomize.py").write_text(BLOCKER)
    report = tmp_path / "modules.txt"
    env = {**os.environ, "PYTHONPATH": str(blocker), "MEMGAZE_MODULES_REPORT": str(report), "MEMGAZE_BLOCK": block}
    done = subprocess.run([str(BIN(script)), *args], capture_output=True, text=True, timeout=120, env=env)
    return done, report.read_text() if report.is_file() else "?"


def test_engine_without_tensorrt_is_one_line_exit_2_and_imports_neither_torch_nor_onnx(bundle: Path, tmp_path: Path) -> None:
    done, modules = run("memgaze-engine", [str(bundle)], tmp_path)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot build a TensorRT plan here: tensorrt is not installed")
    assert modules == ""  # neither torch nor onnx (nor cv2) was imported


@pytest.mark.parametrize(
    ("version", "present", "absent"),
    [("8.6", ["--int8"], ["--stronglyTyped"]), ("10.3", ["--stronglyTyped"], ["--int8"]), ("11.0", [], ["--int8", "--fp16", "--stronglyTyped"])],
)
def test_print_trtexec_per_version(bundle: Path, tmp_path: Path, version: str, present: list[str], absent: list[str]) -> None:
    done, modules = run("memgaze-engine", [str(bundle), "--print-trtexec", "--trt-version", version], tmp_path)
    assert done.returncode == 0, done.stderr
    args = done.stdout.split()
    assert args[:2] == ["trtexec", "--onnx=model.int8.onnx"] and "--maxShapes=image:8x64x64x3,user:8" in args
    assert all(flag in args for flag in present) and not any(flag in args for flag in absent)
    assert modules == ""


def test_print_trtexec_for_dla_and_bad_requests(bundle: Path, tmp_path: Path) -> None:
    done, _ = run("memgaze-engine", [str(bundle), "--print-trtexec", "--trt-version", "8.6", "--dla-core", "1"], tmp_path)
    assert "--useDLACore=1" in done.stdout and "--maxShapes=image:1x64x64x3,user:1" in done.stdout
    for args, message in [
        (["--print-trtexec"], "say which version the command is for with --trt-version"),
        (["--print-trtexec", "--trt-version", "11.0", "--precision", "fp16"], "has no FP16 flag"),
        (["--print-trtexec", "--trt-version", "7.1"], "not supported"),
        (["--trt-version", "10.3"], "only goes with --print-trtexec"),
    ]:
        done, _ = run("memgaze-engine", [str(bundle), *args], tmp_path)
        assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1 and message in done.stderr, done.stderr
    done, _ = run("memgaze-engine", [str(tmp_path / "nowhere")], tmp_path)
    assert done.returncode == 2 and "does not exist" in done.stderr


def test_run_without_opencv_says_what_to_install(bundle: Path, tmp_path: Path) -> None:
    done, modules = run("memgaze-run", ["--model", str(bundle), "--source", str(tmp_path), "--headless"], tmp_path, block="torch,onnx,cv2")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "OpenCV (cv2) is not installed" in lines[0] and "python3-opencv" in lines[0]
    assert modules == ""
