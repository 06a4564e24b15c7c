"""What ``memgaze-checks`` reports: the machine, the libraries, the cameras, the bundle's files, and every backend and
precision that runs here judged on the bundle's gate samples. Torch-free and onnx-free, like the runtime.

Every section is plain JSON-ready data; ``root`` lets files recorded on a Jetson (``/etc/nv_tegra_release``,
``/proc/device-tree/model``, ``/proc/cpuinfo``) stand in for this machine's own.
"""

from __future__ import annotations

import importlib
import platform
import sys
import time
from dataclasses import asdict, dataclass
from functools import partial
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

import numpy as np

import memgaze
from memgaze.cv2_build import gstreamer_in, gui_in, numpy_built_against, v4l2_in
from memgaze.gate import RULE
from memgaze.gate_samples import Infer, Samples, check_against_fp32, read_samples
from memgaze.machine import SYSTEM, cpu_flags, cpu_model, gpus, jetson, memory_gib
from memgaze.runtime.bundle import Bundle
from memgaze.runtime.plan_store import writable
from memgaze.system import usable_cores
from memgaze.trt.probe import probe_machine, tensorrt_module

NUMPY_ABI_ERRORS = ("_ARRAY_API", "numpy.core.multiarray failed to import", "compiled using NumPy 1.x")


@dataclass
class BackendRun:
    """One backend and precision on the gate samples: its verdict, the gate's figures and the time per frame."""

    backend: str
    precision: str
    file: str
    verdict: str  # "pass", "FAIL: <figures that failed>", or "not run: <why>"
    latency_ms: float | None = None
    figures: str = ""


def machine_section(root: Path = SYSTEM) -> dict[str, Any]:
    """This machine: CPU, cores, memory, GPUs and, on a Jetson, its model and L4T / JetPack release."""
    return {
        "platform": platform.platform(), "arch": platform.machine(), "cpu": cpu_model(root), "cpu_flags": cpu_flags(root),
        "cores_usable": usable_cores(), "memory_gib": memory_gib(root), "gpus": gpus() if root == SYSTEM else [],
        "jetson": jetson(root),
    }


def _version(*distributions: str) -> str | None:
    for name in distributions:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


def opencv_section() -> dict[str, Any]:
    """OpenCV's version and build (GStreamer, V4L2, a GUI), and whether its numpy matches the installed one."""
    try:
        cv2 = importlib.import_module("cv2")
    except ImportError as exc:
        abi = any(text in str(exc) for text in NUMPY_ABI_ERRORS)
        hint = ("cv2 was built for numpy 1.x and numpy 2 is installed: pip install 'numpy<2'" if abi else
                "not installed (Jetson: sudo apt-get install python3-opencv; elsewhere pip install opencv-python-headless)")
        return {"version": None, "error": f"{exc}".splitlines()[0], "problem": hint}
    info = str(cv2.getBuildInformation())
    built = numpy_built_against(info)
    problem = None
    if built and int(built.split(".")[0]) < 2 <= int(np.__version__.split(".")[0]):
        problem = f"cv2 was built against numpy {built} and numpy {np.__version__} is installed: pip install 'numpy<2'"
    return {"version": cv2.__version__, "file": getattr(cv2, "__file__", None), "gstreamer": gstreamer_in(info),
            "v4l2": v4l2_in(info), "gui": gui_in(info), "numpy_built_against": built, "problem": problem}


def software_section() -> dict[str, Any]:
    """Python, numpy, OpenCV, ONNX Runtime (and its providers), CUDA, TensorRT and pycuda, as found here."""
    try:
        ort = importlib.import_module("onnxruntime")
        onnxruntime = {"version": ort.__version__, "providers": list(ort.get_available_providers())}
    except ImportError:
        onnxruntime = {"version": None, "providers": []}
    trt = tensorrt_module()
    return {
        "memgaze": memgaze.__version__, "python": platform.python_version(), "python_executable": sys.executable,
        "numpy": np.__version__, "opencv": opencv_section(), "onnxruntime": onnxruntime,
        "tensorrt": None if trt is None else str(trt.__version__),
        "pycuda": _version("pycuda"), "cuda_driver": _cuda_driver(),
    }


def _cuda_driver() -> str | None:
    """The CUDA driver's version (12.2 style) through pycuda, where it imports and finds a driver."""
    try:
        import pycuda.driver as cuda

        cuda.init()
        version = int(cuda.get_driver_version())
    except Exception:  # noqa: BLE001 - no pycuda, no driver: nothing to report
        return None
    return f"{version // 1000}.{version % 1000 // 10}"


def cameras(root: Path = SYSTEM) -> list[str]:
    """The V4L2 video devices (``/dev/video*``): USB cameras, and a Jetson's CSI cameras through its Argus stack."""
    return sorted(f"/dev/{p.name}" for p in (root / "dev").glob("video*"))


def bundle_section(bundle: Bundle) -> dict[str, Any]:
    """The bundle: its model, files (checksums verified on load), TensorRT parser checks and where plans go."""
    checks = bundle.manifest.tensorrt_check
    return {
        "path": str(bundle.root), "model": bundle.manifest.model_name or "(no model card)",
        "exported_by": bundle.manifest.memgaze_version, "input_size": list(bundle.input_size),
        "precisions": bundle.onnx_precisions, "checksums": "verified",
        "tensorrt_parser_checks": checks or "not recorded (exported before memgaze checked its files for TensorRT's "
                                            "parser): re-export the bundle",
        "plans_folder": str(bundle.plans), "plans_folder_writable": writable(bundle.plans) if bundle.plans.exists()
        else writable(bundle.plans.parent) if bundle.plans.parent.exists() else False,
        "plans": [entry.file for entry in bundle.engines],
    }


def timed(infer: Infer, times: list[float]) -> Infer:
    """``infer`` that appends each call's seconds to ``times``."""
    def run(images: np.ndarray, users: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        started = time.perf_counter()
        result = infer(images, users)
        times.append(time.perf_counter() - started)
        return result
    return run


def judge(name: str, precision: str, file: str, opened: Callable[[], Any], samples: Samples) -> BackendRun:
    """Open a backend, run the gate samples through it one frame at a time (two warm-up frames first), and judge it."""
    try:
        backend = opened()
    except Exception as exc:  # noqa: BLE001 - a backend that does not open here is a row, not the end of the report
        return BackendRun(name, precision, file, f"not run: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
    with backend:
        for index in range(min(2, len(samples.frames))):
            backend.infer(samples.frames[index:index + 1], None if samples.users is None else samples.users[index:index + 1])
        times: list[float] = []
        report = check_against_fp32(timed(backend.infer, times), samples)
    verdict = "pass" if report.passed else "FAIL: " + "; ".join(report.failures())
    return BackendRun(name, precision, file, verdict, round(float(np.median(times)) * 1000, 3), report.line())


def backend_runs(bundle: Bundle) -> list[BackendRun]:
    """Every backend and precision available here on the bundle's gate samples: ONNX Runtime with each provider it
    has, and each registered TensorRT plan that fits this machine (or why none runs)."""
    if bundle.manifest.gate_samples is None:
        return [BackendRun("all", "-", "-", "not run: the bundle has no gate samples (re-export it)")]
    samples = read_samples(bundle.root, bundle.manifest)
    runs = _onnxruntime_runs(bundle, samples)
    machine, why = probe_machine()
    if machine is None:
        return runs + [BackendRun("tensorrt", "-", "-", f"not run: {why}")]
    from memgaze.runtime.backends.tensorrt_backend import TensorRTBackend, build_command, fitting_engines

    fitting, reasons = fitting_engines(bundle, None, machine)
    if not fitting:
        detail = "; ".join(reasons) or "no plan for this machine"
        return runs + [BackendRun("tensorrt", "-", "-", f"not run: {detail}; build one with {build_command(bundle, None)}")]
    for entry in fitting:
        runs.append(judge("tensorrt", entry.precision, entry.file, partial(TensorRTBackend, bundle, entry), samples))
    return runs


def _onnxruntime_runs(bundle: Bundle, samples: Samples) -> list[BackendRun]:
    try:
        from memgaze.runtime.backends.onnxruntime_backend import OnnxRuntimeBackend, choose_providers
    except ImportError as exc:
        return [BackendRun("onnxruntime", "-", "-", f"not run: ONNX Runtime is not installed ({exc})")]
    runs = []
    for provider in choose_providers():
        short = provider.removesuffix("ExecutionProvider").lower()
        for precision in bundle.onnx_precisions:
            path, _ = bundle.onnx_model(precision, cpu=provider == "CPUExecutionProvider")
            runs.append(judge(f"onnxruntime ({short})", precision, path.name,
                              partial(OnnxRuntimeBackend, bundle, precision, providers=[provider]), samples))
    return runs


def field_report(bundle: Bundle, root: Path = SYSTEM, run_backends: bool = True) -> dict[str, Any]:
    """Everything ``memgaze-checks`` prints and writes, as one JSON-ready dict."""
    return {
        "machine": machine_section(root), "software": software_section(), "cameras": cameras(root),
        "bundle": bundle_section(bundle), "gate": RULE.as_dict(),
        "backends": [asdict(run) for run in backend_runs(bundle)] if run_backends else [],
    }
