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
    """The TensorRT backend on a plan that fits this machine, built here first when none does and ``build``
    allows; None (or a one-line error when ``required``) otherwise."""
    from memgaze.runtime.backends import tensorrt_backend as trt_backend
    from memgaze.trt.probe import probe_machine

    machine, why = probe_machine()
    if machine is None:
        if required:
            fail(f"--backend tensorrt needs tensorrt and pycuda with a CUDA GPU: {why}")
        return None
    entry, reasons = trt_backend.select_engine(bundle, precision, machine)
    for reason in reasons:
        console.print(f"skipping TensorRT plan: {reason}")
    if entry is None and build:
        entry = _first_use_build(bundle, precision, machine, required)
    if entry is None:
        if required:
            wanted = f"{precision} " if precision else ""
            detail = "; ".join(reasons) if reasons else f"bundle {bundle.root} has no {wanted}TensorRT plan for this machine"
            fail(f"refusing TensorRT: {detail}; build one here with: {trt_backend.build_command(bundle, precision)}")
        return None
    return trt_backend.TensorRTBackend(bundle, entry)


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
        console.print(f"[yellow]warning:[/yellow] {exc}; using ONNX Runtime")
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
    from memgaze.runtime.backends.onnxruntime_backend import OnnxRuntimeBackend

    return OnnxRuntimeBackend(bundle, precision, threads=threads, providers=providers)
