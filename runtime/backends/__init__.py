"""Inference backends behind one interface; :func:`open_backend` picks one (``auto``: a matching TensorRT plan, else ONNX Runtime)."""

from __future__ import annotations

from memgaze.console import console
from memgaze.errors import fail
from memgaze.runtime.backends.base import Backend
from memgaze.runtime.bundle import Bundle

BACKENDS = ("auto", "tensorrt", "onnxruntime")
PRECISIONS = ("int8", "fp16", "fp32")

__all__ = ["BACKENDS", "PRECISIONS", "Backend", "open_backend"]


def _open_tensorrt(bundle: Bundle, precision: str | None, required: bool) -> Backend | None:
    """The TensorRT backend on a plan matching this machine; None (or a one-line error when ``required``) otherwise."""
    from memgaze.runtime.backends import tensorrt_backend as trt_backend

    machine, why = trt_backend.probe_machine()
    if machine is None:
        if required:
            fail(f"--backend tensorrt needs tensorrt and pycuda with a CUDA GPU: {why}")
        return None
    entry, reasons = trt_backend.select_engine(bundle, precision, machine)
    if entry is None:
        if required:
            wanted = f"{precision} " if precision else ""
            detail = "; ".join(reasons) if reasons else f"bundle {bundle.root} has no {wanted}TensorRT plan"
            fail(f"refusing TensorRT: {detail}; build one here with: {trt_backend.rebuild_hint(bundle, precision or 'int8')}")
        for reason in reasons:
            console.print(f"skipping TensorRT plan: {reason}")
        return None
    return trt_backend.TensorRTBackend(bundle, entry)


def open_backend(
    bundle: Bundle,
    backend: str = "auto",
    precision: str | None = None,
    *,
    threads: int | None = None,
    providers: list[str] | None = None,
) -> Backend:
    """Open ``backend`` on ``bundle``. ``auto``: the plan that matches this GPU and TensorRT version when
    tensorrt and pycuda import, else the INT8 ONNX (FP32 without one) on ONNX Runtime."""
    if backend not in BACKENDS:
        fail(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if precision is not None and precision not in PRECISIONS:
        fail(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if backend in ("auto", "tensorrt"):
        opened = _open_tensorrt(bundle, precision, required=backend == "tensorrt")
        if opened is not None:
            return opened
    from memgaze.runtime.backends.onnxruntime_backend import OnnxRuntimeBackend

    return OnnxRuntimeBackend(bundle, precision, threads=threads, providers=providers)
