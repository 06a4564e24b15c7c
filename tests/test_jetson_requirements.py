"""setup.cfg's requirements as a Jetson (aarch64, CPython 3.10) sees them: numpy 1.x, no pip OpenCV; as
tools/jetson_resolve.py hands them to pip (make jetson-check resolves them against PyPI in CI)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent


def _tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("jetson_resolve", ROOT / "tools" / "jetson_resolve.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_on_a_jetson_numpy_stays_1x_and_jetpacks_own_is_enough() -> None:
    tool = _tool()
    core = {Requirement(line).name: Requirement(line) for line in tool.requirements(())}
    numpy = core["numpy"].specifier
    assert numpy.contains("1.21.5") and numpy.contains("1.26.4") and not numpy.contains("2.0.0")  # JetPack 6's numpy fits
    assert "opencv-python-headless" not in core  # JetPack's OpenCV, never pip's
    assert all(Requirement(line).marker is None for line in tool.requirements(("runtime",)))
    assert "onnxruntime" in {Requirement(line).name for line in tool.requirements(("runtime",))}


def test_on_a_workstation_the_same_file_allows_numpy_2() -> None:
    from packaging.markers import default_environment

    tool = _tool()
    tool.ENVIRONMENT = {**default_environment(), "platform_machine": "x86_64"}
    core = {Requirement(line).name: Requirement(line) for line in tool.requirements(())}
    assert core["numpy"].specifier.contains("2.4.6") and "opencv-python-headless" in core
