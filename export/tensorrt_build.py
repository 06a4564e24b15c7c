"""TensorRT engine (plan) from the Q/DQ graph, for TensorRT 8.6 and 10.x, or the trtexec command.

A plan is tied to one GPU model and TensorRT version, so its name says both:
``model.<gpu-slug>.trt<version>.plan``. Where ``tensorrt`` does not import, the export prints
the ``trtexec`` command that builds the same plan on the device.
"""

from __future__ import annotations

import importlib
import re
import shlex
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from memgaze.atomic import write_bytes
from memgaze.errors import fail

if TYPE_CHECKING:
    import tensorrt as trt

MAX_BATCH = 8


@dataclass(frozen=True)
class GpuInfo:
    name: str
    compute_capability: str


@dataclass
class BuildInfo:
    """What the manifest records about a built plan."""

    file: str
    precision: str
    gpu: str
    compute_capability: str
    tensorrt: str
    built: str
    build_seconds: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def tensorrt_module() -> ModuleType | None:
    """The ``tensorrt`` module where a real one imports (type stubs alone do not count)."""
    try:
        trt = importlib.import_module("tensorrt")
    except Exception:  # noqa: BLE001 - a broken install is as good as none
        return None
    return trt if hasattr(trt, "Builder") else None


def _gpu_from_cuda_python() -> GpuInfo | None:
    try:
        from cuda.bindings import runtime as cudart  # type: ignore[import-not-found]
    except ImportError:
        try:
            from cuda import cudart  # type: ignore[import-not-found,no-redef]
        except ImportError:
            return None
    err, props = cudart.cudaGetDeviceProperties(0)
    if int(err) != 0:
        return None
    name = props.name.decode() if isinstance(props.name, bytes) else str(props.name)
    return GpuInfo(name.strip("\x00 "), f"{props.major}.{props.minor}")


def _gpu_from_nvidia_smi() -> GpuInfo | None:
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,compute_cap", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=20, check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    first = out.strip().splitlines()[0] if out.strip() else ""
    name, _, cap = first.rpartition(",")
    return GpuInfo(name.strip(), cap.strip()) if name else None


def gpu_info() -> GpuInfo | None:
    """Name and compute capability of GPU 0: cuda-python if present, else nvidia-smi."""
    try:
        found = _gpu_from_cuda_python()
    except Exception:  # noqa: BLE001 - no driver, no device: try the next way
        found = None
    return found or _gpu_from_nvidia_smi()


def gpu_slug(name: str) -> str:
    """File-name-safe GPU name: ``NVIDIA Jetson AGX Orin`` -> ``jetson-agx-orin``."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower().replace("nvidia", "")).strip("-")
    return slug or "gpu"


def plan_name(gpu: str, trt_version: str) -> str:
    """``model.<gpu-slug>.trt<major.minor.patch>.plan``."""
    version = ".".join(trt_version.split(".")[:3])
    return f"model.{gpu_slug(gpu)}.trt{version}.plan"


def precision_name(int8: bool, fp16: bool) -> str:
    """``int8``, ``fp16``, ``int8+fp16`` or ``fp32``."""
    return "+".join(["int8"] * int8 + ["fp16"] * fp16) or "fp32"


def shapes(input_size: tuple[int, int], personalized: bool, batch: int) -> str:
    """trtexec shape spec for one batch size: ``image:BxHxWx3[,user:B]``."""
    height, width = input_size
    spec = f"image:{batch}x{height}x{width}x3"
    return f"{spec},user:{batch}" if personalized else spec


def trtexec_command(
    onnx_name: str, input_size: tuple[int, int], personalized: bool, *, int8: bool = True, fp16: bool = False,
    plan: str = "model.GPU.trtVERSION.plan", workspace_gb: float = 2.0, dla_core: int | None = None,
    timing_cache: str = "timing.cache", max_batch: int = MAX_BATCH,
) -> str:
    """The trtexec command that builds the same plan on the device (run inside the bundle folder)."""
    args = [
        "trtexec", f"--onnx={onnx_name}", *(["--int8"] if int8 else []), *(["--fp16"] if fp16 else []),
        f"--minShapes={shapes(input_size, personalized, 1)}", f"--optShapes={shapes(input_size, personalized, 1)}",
        f"--maxShapes={shapes(input_size, personalized, max_batch)}",
        f"--memPoolSize=workspace:{int(workspace_gb * 1024)}",
        *([f"--useDLACore={dla_core}", "--allowGPUFallback"] if dla_core is not None else []),
        f"--timingCacheFile={timing_cache}", f"--saveEngine={plan}",
    ]
    return shlex.join(args)


def _parse(network: trt.INetworkDefinition, logger: trt.ILogger, onnx_path: Path) -> trt.OnnxParser:
    """Parse the ONNX file into ``network``; one-line error with the parser's first complaints."""
    import tensorrt as trt

    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes(), str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(min(parser.num_errors, 3)))
        fail(f"TensorRT cannot parse {onnx_path.name}: {errors or 'unknown error'}")
    return parser


def build_engine(
    onnx_path: Path, out_dir: Path, input_size: tuple[int, int], personalized: bool, *, int8: bool = True,
    fp16: bool = False, workspace_gb: float = 2.0, dla_core: int | None = None, timing_cache: Path | None = None,
    max_batch: int = MAX_BATCH,
) -> BuildInfo:
    """Build ``out_dir/model.<gpu>.trt<version>.plan`` from ``onnx_path`` (the Q/DQ graph for INT8) with TensorRT."""
    if tensorrt_module() is None:
        fail("TensorRT is not installed here; build the plan on the device with the trtexec command")
    import tensorrt as trt

    gpu = gpu_info() or GpuInfo("unknown-gpu", "unknown")
    version = str(trt.__version__)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    major = int(version.split(".")[0])
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH) if major < 10 else 0
    network = builder.create_network(flags)
    parser = _parse(network, logger, onnx_path)
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * (1 << 30)))
    if int8:
        config.set_flag(trt.BuilderFlag.INT8)
    if fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    if dla_core is not None:
        if dla_core >= builder.num_DLA_cores:
            fail(f"--dla-core {dla_core} requested but this device has {builder.num_DLA_cores} DLA core(s)")
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = dla_core
        config.set_flag(trt.BuilderFlag.GPU_FALLBACK)
    height, width = input_size
    profile = builder.create_optimization_profile()
    profile.set_shape("image", trt.Dims([1, height, width, 3]), trt.Dims([1, height, width, 3]), trt.Dims([max_batch, height, width, 3]))
    if personalized:
        profile.set_shape("user", trt.Dims([1]), trt.Dims([1]), trt.Dims([max_batch]))
    config.add_optimization_profile(profile)
    cache_bytes = timing_cache.read_bytes() if timing_cache is not None and timing_cache.is_file() else b""
    cache = config.create_timing_cache(cache_bytes)
    config.set_timing_cache(cache, False)
    started = time.monotonic()
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        fail(f"TensorRT could not build an engine from {onnx_path.name} (see the TensorRT log above)")
    seconds = time.monotonic() - started
    del parser
    name = plan_name(gpu.name, version)
    write_bytes(out_dir / name, bytes(memoryview(serialized)))
    if timing_cache is not None:
        write_bytes(timing_cache, bytes(memoryview(config.get_timing_cache().serialize())))
    return BuildInfo(
        file=name, precision=precision_name(int8, fp16), gpu=gpu.name, compute_capability=gpu.compute_capability, tensorrt=version,
        built=datetime.now(timezone.utc).isoformat(timespec="seconds"), build_seconds=round(seconds, 1),
    )
