"""Inference backends behind one interface; :func:`open_backend` picks one (``auto``: a matching TensorRT plan, else ONNX Runtime)."""

from __future__ import annotations

from memgaze.console import console
from memgaze.errors import MemgazeError, fail
from memgaze.manifest import EngineEntry
from memgaze.precision import PRECISIONS, check_precision
from memgaze.runtime.backends.base import Backend
from memgaze.runtime.bundle import Bundle
from memgaze.trt.fit import Machine

BACKENDS = ("auto", "tensorrt", "onnxruntime")

__all__ = ["BACKENDS", "PRECISIONS", "Backend", "open_backend"]


def _open_tensorrt(bundle: Bundle, precision: str | None, required: bool, build: bool) -> Backend | None:
    """The TensorRT backend on the best plan that fits this machine and loads, built here first when none does and
    ``build`` allows; None (or a one-line error when ``required``) otherwise. A plan that fits but does not load is
    skipped with one line (``auto``) or refused (``tensorrt``)."""
    from memgaze.runtime.backends import tensorrt_backend as trt_backend
    from memgaze.trt.probe import probe_machine

    machine, why = probe_machine()
    if machine is None:
        if required:
            fail(f"--backend tensorrt needs tensorrt and pycuda with a CUDA GPU: {why}")
        return None
    fitting, reasons = trt_backend.fitting_engines(bundle, precision, machine)
    for reason in reasons:
        console.print(f"skipping TensorRT plan: {reason}", soft_wrap=True)
    if not fitting and build:
        built = _first_use_build(bundle, precision, machine, required)
        fitting = [] if built is None else [built]
    for entry in fitting:
        try:
            return trt_backend.TensorRTBackend(bundle, entry)
        except Exception as exc:  # noqa: BLE001 - a plan that fits but does not load: TensorRT's, pycuda's or our error
            if required:
                fail(f"TensorRT plan {entry.file} does not load here: {exc}")
            console.print(f"skipping TensorRT plan {entry.file}: it does not load here ({exc})", soft_wrap=True)
            reasons.append(f"{entry.file} does not load: {exc}")
    if required:
        wanted = f"{precision} " if precision else ""
        detail = "; ".join(reasons) if reasons else f"bundle {bundle.root} has no {wanted}TensorRT plan for this machine"
        fail(f"refusing TensorRT: {detail}; build one here with: {trt_backend.build_command(bundle, precision)}")
    return None


def _first_use_build(bundle: Bundle, precision: str | None, machine: Machine, required: bool) -> EngineEntry | None:
    """Build and register a plan for this machine (memgaze-engine's code); with ``auto``, a failed build falls back to ONNX Runtime."""
    from memgaze.runtime.engines import BuildRequest, ensure_plan

    console.print(
        f"no TensorRT plan in {bundle.root} fits this GPU (compute capability {machine.compute_capability}, "
        f"TensorRT {machine.tensorrt}): building one now, once (--no-build skips this)"
    )
    try:
        return ensure_plan(bundle.root, BuildRequest(precision=precision))
    except MemgazeError as exc:
        if required:
            raise
        console.print(f"[yellow]warning:[/yellow] {exc}; falling back to ONNX Runtime", soft_wrap=True)
        return None


def open_backend(
    bundle: Bundle,
    backend: str = "auto",
    precision: str | None = None,
    *,
    threads: int | None = None,
    providers: list[str] | None = None,
    build: bool = False,
) -> Backend:
    """Open ``backend`` on ``bundle``. ``auto``: the plan that fits this GPU and TensorRT version when
    tensorrt and pycuda import (built here first when ``build`` and none does), else the INT8 ONNX
    (FP32 without one) on ONNX Runtime."""
    if backend not in BACKENDS:
        fail(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if precision is not None:
        check_precision(precision)
    if backend in ("auto", "tensorrt"):
        opened = _open_tensorrt(bundle, precision, required=backend == "tensorrt", build=build)
        if opened is not None:
            return opened
    try:
        from memgaze.runtime.backends.onnxruntime_backend import OnnxRuntimeBackend
    except ImportError as exc:
        why = "no TensorRT plan runs here, and " if backend == "auto" else ""
        fail(f"{why}ONNX Runtime is not installed ({exc}): pip install onnxruntime (memgaze[runtime] and memgaze[jetson] "
             "include it)")
    return OnnxRuntimeBackend(bundle, precision, threads=threads, providers=providers)
