"""This machine's GPU (compute capability) and TensorRT version, from whichever CUDA binding is installed."""

from __future__ import annotations

import importlib
import shutil
import subprocess
from types import ModuleType

from memgaze.trt.fit import Machine


def tensorrt_module() -> ModuleType | None:
    """The ``tensorrt`` module where a real one imports (type stubs alone do not count)."""
    try:
        trt = importlib.import_module("tensorrt")
    except Exception:  # noqa: BLE001 - a broken install is as good as none
        return None
    return trt if hasattr(trt, "Builder") else None


def _from_pycuda(device: int) -> tuple[str, str] | None:
    try:
        import pycuda.driver as cuda
    except ImportError:
        return None
    cuda.init()
    gpu = cuda.Device(device)
    major, minor = gpu.compute_capability()
    return f"{major}.{minor}", str(gpu.name())


def _from_cuda_python(device: int) -> tuple[str, str] | None:
    try:
        from cuda.bindings import runtime as cudart  # type: ignore[import-not-found]
    except ImportError:
        try:
            from cuda import cudart  # type: ignore[import-not-found,no-redef]
        except ImportError:
            return None
    err, props = cudart.cudaGetDeviceProperties(device)
    if int(err) != 0:
        return None
    name = props.name.decode() if isinstance(props.name, bytes) else str(props.name)
    return f"{props.major}.{props.minor}", name.strip("\x00 ")


def _from_nvidia_smi(device: int) -> tuple[str, str] | None:
    if shutil.which("nvidia-smi") is None:
        return None
    out = subprocess.run(
        ["nvidia-smi", f"--id={device}", "--query-gpu=compute_cap,name", "--format=csv,noheader"],
        capture_output=True, text=True, timeout=20, check=True,
    ).stdout.strip()
    cap, _, name = out.partition(",")
    return (cap.strip(), name.strip()) if cap.strip() else None


def gpu_capability(device: int = 0) -> tuple[str, str] | None:
    """``(compute capability, name)`` of GPU ``device``: pycuda, else cuda-python, else nvidia-smi (JetPack has no nvidia-smi)."""
    for probe in (_from_pycuda, _from_cuda_python, _from_nvidia_smi):
        try:
            found = probe(device)
        except Exception:  # noqa: BLE001 - no driver, no device: try the next way
            found = None
        if found:
            return found
    return None


def pycuda_missing() -> str | None:
    """Why ``pycuda.driver`` does not import here (None when it does): the TensorRT backend's buffers and stream need it."""
    try:
        importlib.import_module("pycuda.driver")
    except Exception as exc:  # noqa: BLE001 - ImportError, or pycuda built against a missing libcuda
        return f"pycuda does not import ({exc}): pip install pycuda (memgaze[jetson] includes it)"
    return None


def dla_cores(trt: ModuleType) -> int:
    """DLA cores TensorRT sees on this device (0 on TensorRT 11, which has no DLA, and off a Jetson)."""
    if int(str(trt.__version__).split(".")[0]) >= 11:
        return 0
    return int(trt.Runtime(trt.Logger(trt.Logger.ERROR)).num_DLA_cores)  # trt-only: 8,10


def probe_machine(device: int = 0) -> tuple[Machine | None, str]:
    """This machine, or ``(None, why not)`` when TensorRT, pycuda or a CUDA GPU is missing: checked before any plan is
    built, so a plan is never built where it could not run."""
    trt = tensorrt_module()
    if trt is None:
        return None, "tensorrt is not installed (on a Jetson it comes with JetPack: sudo apt-get install python3-libnvinfer)"
    missing = pycuda_missing()
    if missing is not None:
        return None, missing
    found = gpu_capability(device)
    if found is None:
        return None, "no usable CUDA GPU (pycuda, cuda-python and nvidia-smi found none)"
    return Machine(compute_capability=found[0], tensorrt=str(trt.__version__), gpu=found[1], dla_cores=dla_cores(trt)), ""
