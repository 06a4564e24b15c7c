"""TensorRT backend: a serialized plan, pinned host buffers, one CUDA stream (TensorRT 8.6, 10.x and 11.x APIs).

``tensorrt`` and ``pycuda`` are imported lazily so this module imports anywhere; only
:class:`TensorRTBackend` and :class:`CudaIO` need them. Lines that use a name only some TensorRT
versions have carry a ``# trt-only: <majors>`` marker (see ``tools/trt_api_check.py``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from memgaze.errors import fail
from memgaze.manifest import EngineEntry
from memgaze.runtime.backends.base import Backend
from memgaze.precision import precision_rank
from memgaze.runtime.bundle import Bundle
from memgaze.trt.build import dims
from memgaze.trt.fit import Machine, mismatch


def select_engine(bundle: Bundle, precision: str | None, machine: Machine) -> tuple[EngineEntry | None, list[str]]:
    """The bundle's plan that fits ``machine`` (best precision first, or one built with ``precision``), and why others do not."""
    candidates = [e for e in bundle.engines if precision is None or precision in e.precisions()]
    reasons = []
    for entry in sorted(candidates, key=lambda e: min(precision_rank(p) for p in e.precisions())):
        why = mismatch(entry, machine)
        if why is None:
            return entry, []
        reasons.append(why)
    return None, reasons


def build_command(bundle: Bundle, precision: str | None) -> str:
    """What to run to build (and register) a plan for this machine."""
    return f"memgaze-engine {bundle.root}" + (f" --precision {precision}" if precision else "")


class CudaContext:
    """The device's primary CUDA context, made current for this thread until :meth:`close`."""

    def __init__(self, device: int = 0) -> None:
        import pycuda.driver as cuda

        cuda.init()
        self._primary = cuda.Device(device).retain_primary_context()
        self._primary.push()

    def close(self) -> None:
        import pycuda.driver as cuda

        if self._primary is not None:
            cuda.Context.pop()
            self._primary = None


class CudaIO:
    """Pinned host buffers, device buffers and one CUDA stream for named tensors; async copies."""

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
        """Copy ``array`` into the pinned buffer and queue the host-to-device copy."""
        np.copyto(self.host[name], array, casting="same_kind")  # e.g. int64 user ids into an int32 binding
        self._cuda.memcpy_htod_async(self.device[name], self.host[name], self.stream)

    def download(self, name: str) -> None:
        """Queue the device-to-host copy of tensor ``name`` into its pinned buffer."""
        self._cuda.memcpy_dtoh_async(self.host[name], self.device[name], self.stream)

    def synchronize(self) -> None:
        self.stream.synchronize()

    def close(self) -> None:
        for buffer in self.device.values():
            buffer.free()
        self.device.clear()
        self.host.clear()


class TensorRTBackend(Backend):
    """Runs a TensorRT plan: HtoD → execute → DtoH on one stream, then synchronize."""

    name = "tensorrt"

    def __init__(self, bundle: Bundle, entry: EngineEntry, device: int = 0) -> None:
        import tensorrt as trt

        self.precision = entry.precision
        self._file = bundle.plan_path(entry)
        self._input_hw = bundle.input_size
        self._cuda = CudaContext(device)
        try:
            self._runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
            self._engine = self._runtime.deserialize_cuda_engine(self._file.read_bytes())
            if self._engine is None:
                fail(
                    f"TensorRT could not deserialize {self._file}; rebuild it on this device: "
                    f"{build_command(bundle, entry.precisions()[0])} --force"
                )
            self._context = self._engine.create_execution_context()
        except BaseException:
            self._cuda.close()
            raise
        self._max_batch = max(1, entry.max_batch)
        self._io: CudaIO | None = None
        self._batch = 0
        self._inputs, self._outputs = self._io_names()

    @property
    def input_size(self) -> tuple[int, int]:
        return self._input_hw

    def describe(self) -> str:
        return f"tensorrt {self.precision} ({self._file.name}, batch up to {self._max_batch})"

    def _io_names(self) -> tuple[list[str], list[str]]:
        """Input and output tensor names (the named-tensor API, in TensorRT 8.5 and later)."""
        import tensorrt as trt

        names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
        inputs = [n for n in names if self._engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        return inputs, [n for n in names if n not in inputs]

    def _prepare(self, batch: int) -> None:
        """Set the input shapes for ``batch`` and (re)allocate buffers; a no-op when the batch is unchanged."""
        import tensorrt as trt

        if batch == self._batch:
            return
        height, width = self._input_hw
        shapes = {"image": (batch, height, width, 3), "user": (batch,)}
        specs: dict[str, tuple[tuple[int, ...], Any]] = {}
        for name in self._inputs:
            self._context.set_input_shape(name, shapes[name])
            specs[name] = (shapes[name], trt.nptype(self._engine.get_tensor_dtype(name)))
        for name in self._outputs:
            shape = dims(self._context.get_tensor_shape(name))
            specs[name] = (shape, trt.nptype(self._engine.get_tensor_dtype(name)))
        if self._io is not None:
            self._io.close()
        self._io = CudaIO(specs)
        for name in specs:
            self._context.set_tensor_address(name, self._io.address(name))
        self._batch = batch

    def infer(self, images: np.ndarray, users: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        if images.shape[0] > self._max_batch:  # e.g. a static batch-1 DLA plan fed by several sources
            parts = [
                self.infer(images[i:i + self._max_batch], None if users is None else users[i:i + self._max_batch])
                for i in range(0, images.shape[0], self._max_batch)
            ]
            return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
        batch = images.shape[0]
        self._prepare(batch)
        io = self._io
        assert io is not None
        io.upload("image", images)
        if "user" in self._inputs:
            io.upload("user", np.zeros(batch, np.int64) if users is None else users)
        if not self._context.execute_async_v3(io.stream_handle):
            fail(f"TensorRT failed to execute {self._file}")
        for name in self._outputs:
            io.download(name)
        io.synchronize()
        return io.host["score"].astype(np.float32), io.host["heatmap"].astype(np.float32)

    def close(self) -> None:
        if self._io is not None:
            self._io.close()
            self._io = None
        self.__dict__.pop("_context", None)
        self.__dict__.pop("_engine", None)
        self._cuda.close()
