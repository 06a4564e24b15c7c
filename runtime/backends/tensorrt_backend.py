"""TensorRT backend: a serialized plan, pinned host buffers, one CUDA stream (TensorRT 8.5/8.6, 10.x and 11.x APIs).

``tensorrt`` and ``pycuda`` are imported lazily so this module imports anywhere; only
:class:`TensorRTBackend`, :class:`CudaContext` and :class:`CudaIO` need them. Lines that use a name only some
TensorRT versions have carry a ``# trt-only: <majors>`` marker (see ``tools/trt_api_check.py``).

The CUDA context is the device's primary one, made current only around each use and by one thread at a time, and
released by :meth:`TensorRTBackend.close` or, for a script that never calls it, a finalizer: no context is left on
any thread's stack at exit (pycuda aborts the process when one is). Buffers are allocated once, for the largest
batch of the plan's optimization profile, and every batch uses their leading slice.
"""

from __future__ import annotations

import threading
import weakref
from types import TracebackType
from typing import Any

import numpy as np

from memgaze.errors import fail
from memgaze.manifest import EngineEntry
from memgaze.runtime.backends.base import Backend
from memgaze.precision import precision_rank
from memgaze.runtime.bundle import Bundle
from memgaze.trt.build import dims
from memgaze.trt.fit import Machine, mismatch


def fitting_engines(bundle: Bundle, precision: str | None, machine: Machine) -> tuple[list[EngineEntry], list[str]]:
    """The bundle's plans that fit ``machine`` (best precision first, or those built with ``precision``), and why the
    others do not."""
    candidates = [e for e in bundle.engines if precision is None or precision in e.precisions()]
    fitting, reasons = [], []
    for entry in sorted(candidates, key=lambda e: min(precision_rank(p) for p in e.precisions())):
        why = mismatch(entry, machine)
        if why is None:
            fitting.append(entry)
        else:
            reasons.append(why)
    return fitting, reasons


def select_engine(bundle: Bundle, precision: str | None, machine: Machine) -> tuple[EngineEntry | None, list[str]]:
    """The best plan of :func:`fitting_engines` (None when none fits, with why each does not)."""
    fitting, reasons = fitting_engines(bundle, precision, machine)
    return (fitting[0], []) if fitting else (None, reasons)


def build_command(bundle: Bundle, precision: str | None) -> str:
    """What to run to build (and register) a plan for this machine."""
    return f"memgaze-engine {bundle.root}" + (f" --precision {precision}" if precision else "")


class CudaContext:
    """The device's primary CUDA context, current only inside ``with context:`` (pushed on entry, popped on exit, one
    thread at a time); :meth:`detach` releases it."""

    def __init__(self, device: int = 0) -> None:
        import pycuda.driver as cuda

        cuda.init()
        self._cuda = cuda
        self._lock = threading.RLock()
        self._primary: Any = cuda.Device(device).retain_primary_context()

    def __enter__(self) -> CudaContext:
        self._lock.acquire()
        try:
            if self._primary is None:
                fail("the CUDA context of this TensorRT backend was released (the model was closed)")
            self._primary.push()
        except BaseException:
            self._lock.release()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            self._cuda.Context.pop()
        finally:
            self._lock.release()

    def detach(self) -> None:
        """Release the primary context (once; it must not be current on any thread)."""
        with self._lock:
            if self._primary is not None:
                self._primary.detach()
                self._primary = None


class CudaIO:
    """Pinned host buffers, device buffers and one CUDA stream for named tensors, allocated once; async copies of a
    leading slice (the first ``n`` rows) of each. Create, use and close it inside ``with CudaContext``."""

    def __init__(self, specs: dict[str, tuple[tuple[int, ...], Any]]) -> None:
        import pycuda.driver as cuda

        self._cuda = cuda
        self.stream = cuda.Stream()
        self.host = {name: cuda.pagelocked_empty(shape, dtype) for name, (shape, dtype) in specs.items()}
        self.device = {name: cuda.mem_alloc(max(buf.nbytes, 1)) for name, buf in self.host.items()}

    @property
    def stream_handle(self) -> int:
        return int(self.stream.handle)

    def address(self, name: str) -> int:
        """Device pointer of tensor ``name``."""
        return int(self.device[name])

    def upload(self, name: str, array: np.ndarray) -> None:
        """Copy ``array`` into the leading rows of the pinned buffer and queue their host-to-device copy."""
        rows = self.host[name][: len(array)]
        np.copyto(rows, array, casting="same_kind")  # e.g. int64 user ids into an int32 binding
        self._cuda.memcpy_htod_async(self.device[name], rows, self.stream)

    def download(self, name: str, rows: int) -> None:
        """Queue the device-to-host copy of the first ``rows`` rows of tensor ``name`` into its pinned buffer."""
        self._cuda.memcpy_dtoh_async(self.host[name][:rows], self.device[name], self.stream)

    def synchronize(self) -> None:
        self.stream.synchronize()

    def close(self) -> None:
        for buffer in self.device.values():
            buffer.free()
        self.device.clear()
        self.host.clear()


class _DeviceState:
    """Everything a :class:`TensorRTBackend` holds on the GPU. :meth:`release` (its finalizer, or ``close()``) frees it
    in order with the context current, then releases the context; it holds no reference to the backend."""

    def __init__(self, cuda: CudaContext) -> None:
        self.cuda = cuda
        self.runtime: Any = None
        self.engine: Any = None
        self.context: Any = None
        self.io: CudaIO | None = None

    def release(self) -> None:
        with self.cuda:
            if self.io is not None:
                self.io.close()
            self.io = self.context = self.engine = self.runtime = None  # execution context, engine, runtime
        self.cuda.detach()


class TensorRTBackend(Backend):
    """Runs a TensorRT plan: HtoD → execute → DtoH on one stream, then synchronize."""

    name = "tensorrt"

    def __init__(self, bundle: Bundle, entry: EngineEntry, device: int = 0) -> None:
        self.precision = entry.precision
        self._file = bundle.plan_path(entry)
        self._input_hw = bundle.input_size
        self._gpu = _DeviceState(CudaContext(device))
        self._release = weakref.finalize(self, self._gpu.release)
        try:
            with self._gpu.cuda:
                self._load(bundle, entry)
        except BaseException:
            self._release()
            raise

    def _load(self, bundle: Bundle, entry: EngineEntry) -> None:
        """Deserialize the plan, and allocate and bind buffers for the largest batch of its profile."""
        import tensorrt as trt

        gpu = self._gpu
        gpu.runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        gpu.engine = gpu.runtime.deserialize_cuda_engine(self._file.read_bytes())
        if gpu.engine is None:
            fail(f"TensorRT could not deserialize {self._file}; rebuild it on this device: "
                 f"{build_command(bundle, entry.precisions()[0])} --force")
        gpu.context = gpu.engine.create_execution_context()
        names = [gpu.engine.get_tensor_name(i) for i in range(gpu.engine.num_io_tensors)]
        self._inputs = [n for n in names if gpu.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self._outputs = [n for n in names if n not in self._inputs]
        if "image" not in self._inputs or {"score", "heatmap"} - set(self._outputs):
            fail(f"{self._file} does not follow the memgaze graph contract (inputs image[,user]; outputs score, heatmap)")
        self._max_batch = int(gpu.engine.get_tensor_profile_shape("image", 0)[2][0])  # (min, opt, max) of profile 0
        self._set_batch(self._max_batch)
        specs = {name: (dims(gpu.context.get_tensor_shape(name)), trt.nptype(gpu.engine.get_tensor_dtype(name)))
                 for name in names}
        gpu.io = CudaIO(specs)
        for name in names:
            gpu.context.set_tensor_address(name, gpu.io.address(name))
        self._batch = self._max_batch

    @property
    def input_size(self) -> tuple[int, int]:
        return self._input_hw

    @property
    def max_batch(self) -> int:
        """The largest batch the plan takes (its optimization profile's maximum)."""
        return self._max_batch

    def describe(self) -> str:
        return f"tensorrt {self.precision} ({self._file.name}, batch up to {self._max_batch})"

    def _set_batch(self, batch: int) -> None:
        """Set every input's shape for ``batch`` (TensorRT's verdict checked)."""
        height, width = self._input_hw
        shapes = {"image": (batch, height, width, 3), "user": (batch,)}
        for name in self._inputs:
            if not self._gpu.context.set_input_shape(name, shapes[name]):
                fail(f"TensorRT refused the shape {list(shapes[name])} for input {name!r} of {self._file.name} "
                     f"(its profile takes batch 1 to {self._max_batch})")
        self._batch = batch

    def infer(self, images: np.ndarray, users: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        if images.shape[0] > self._max_batch:  # e.g. a static batch-1 DLA plan fed by several sources
            parts = [
                self.infer(images[i:i + self._max_batch], None if users is None else users[i:i + self._max_batch])
                for i in range(0, images.shape[0], self._max_batch)
            ]
            return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
        with self._gpu.cuda:
            return self._run(images, users)

    def _run(self, images: np.ndarray, users: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """One batch on the plan, with the context current."""
        batch = images.shape[0]
        io = self._gpu.io
        if io is None:
            fail(f"the TensorRT backend on {self._file.name} was closed")
        if batch != self._batch:
            self._set_batch(batch)
        io.upload("image", images)
        if "user" in self._inputs:
            io.upload("user", np.zeros(batch, np.int64) if users is None else users)
        if not self._gpu.context.execute_async_v3(io.stream_handle):
            fail(f"TensorRT failed to execute {self._file}")
        for name in self._outputs:
            io.download(name, batch)
        io.synchronize()
        return io.host["score"][:batch].astype(np.float32), io.host["heatmap"][:batch].astype(np.float32)

    def close(self) -> None:
        self._release()
