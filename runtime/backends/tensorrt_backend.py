"""TensorRT backend: a serialized plan, pinned host buffers, one CUDA stream (TensorRT 8.6 and 10.x APIs).

``tensorrt`` and ``pycuda`` are imported lazily so this module imports anywhere; only
:class:`TensorRTBackend`, :class:`CudaIO` and :func:`probe_machine` need them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from memgaze.errors import fail
from memgaze.runtime.backends.base import Backend
from memgaze.runtime.bundle import PRECISION_ORDER, Bundle


@dataclass(frozen=True)
class MachineInfo:
    """What a TensorRT plan is tied to."""

    gpu: str
    compute_capability: str
    tensorrt: str


def probe_machine(device: int = 0) -> tuple[MachineInfo | None, str]:
    """This machine's GPU and TensorRT version, or ``(None, why not)`` when tensorrt/pycuda/CUDA is missing."""
    try:
        import pycuda.driver as cuda
        import tensorrt as trt
    except ImportError as exc:
        return None, f"{exc.name or 'tensorrt/pycuda'} is not installed"
    try:
        cuda.init()
        gpu = cuda.Device(device)
        major, minor = gpu.compute_capability()
        return MachineInfo(gpu.name(), f"{major}.{minor}", trt.__version__), ""
    except Exception as exc:  # pycuda raises pycuda._driver.Error subclasses (no GPU, no driver)
        return None, f"no usable CUDA GPU ({str(exc).strip() or type(exc).__name__})"


def _capability(value: Any) -> str:
    """Normalize a compute capability given as "8.7", [8, 7] or "sm_87" to "8.7"."""
    if isinstance(value, (list, tuple)):
        return ".".join(str(int(v)) for v in value)
    text = str(value).removeprefix("sm_")
    return text if "." in text or len(text) != 2 else f"{text[0]}.{text[1]}"


def engine_mismatch(entry: dict[str, Any], machine: MachineInfo) -> str | None:
    """Why the plan in manifest ``entry`` cannot run on ``machine`` (None when it can)."""
    problems = []
    if str(entry.get("gpu", "")) != machine.gpu:
        problems.append(f"GPU {entry.get('gpu')!r} (this one is {machine.gpu!r})")
    if _capability(entry.get("compute_capability", "")) != machine.compute_capability:
        problems.append(
            f"compute capability {_capability(entry.get('compute_capability', ''))} (this one is {machine.compute_capability})"
        )
    if str(entry.get("tensorrt", "")) != machine.tensorrt:
        problems.append(f"TensorRT {entry.get('tensorrt')} (this one is {machine.tensorrt})")
    if not problems:
        return None
    return f"{entry.get('file')} was built for " + ", ".join(problems)


def _precisions(entry: dict[str, Any]) -> list[str]:
    """A plan's precisions: "int8+fp16" → ["int8", "fp16"]."""
    return str(entry.get("precision", "fp32")).split("+")


def select_engine(bundle: Bundle, precision: str | None, machine: MachineInfo) -> tuple[dict[str, Any] | None, list[str]]:
    """The bundle's plan that runs on ``machine`` (best precision first, or one built with ``precision``), and why others do not."""
    rank = {p: i for i, p in enumerate(PRECISION_ORDER)}
    candidates = [e for e in bundle.engines if precision is None or precision in _precisions(e)]
    reasons = []
    for entry in sorted(candidates, key=lambda e: min(rank.get(p, len(rank)) for p in _precisions(e))):
        why = engine_mismatch(entry, machine)
        if why is None:
            return entry, []
        reasons.append(why)
    return None, reasons


def rebuild_hint(bundle: Bundle, precision: str) -> str:
    """The trtexec command that builds a plan for this machine (the exporter's, from the manifest, where it gave one)."""
    if bundle.manifest.get("trtexec"):
        return f"cd {bundle.root} && {bundle.manifest['trtexec']}"
    onnx_file = bundle.manifest["models"].get("int8" if precision == "int8" else "fp32", "model.onnx")
    flags = {"int8": " --int8", "fp16": " --fp16"}.get(precision, "")
    return f"cd {bundle.root} && trtexec --onnx={onnx_file} --saveEngine=model.<gpu>.trt<version>.plan{flags}"


class CudaContext:
    """The device's primary CUDA context, made current for this thread until :meth:`close`."""

    def __init__(self, device: int = 0) -> None:
        import pycuda.driver as cuda

        cuda.init()
        self._context = cuda.Device(device).retain_primary_context()
        self._context.push()

    def close(self) -> None:
        import pycuda.driver as cuda

        if self._context is not None:
            cuda.Context.pop()
            self._context = None


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

    def __init__(self, bundle: Bundle, entry: dict[str, Any], device: int = 0) -> None:
        import tensorrt as trt

        self.precision = str(entry.get("precision", "?"))
        self._file = str(entry["file"])
        self._size = bundle.input_size
        self._cuda = CudaContext(device)
        try:
            self._runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
            self._engine = self._runtime.deserialize_cuda_engine((bundle.root / self._file).read_bytes())
            if self._engine is None:
                fail(
                    f"TensorRT could not deserialize {bundle.root / self._file}; rebuild it on this device: "
                    f"{rebuild_hint(bundle, self.precision)}"
                )
            self._context = self._engine.create_execution_context()
        except BaseException:
            self._cuda.close()
            raise
        # TensorRT >= 10 has only named tensors; 8.6 also has them, but its engines are driven through bindings.
        self._v3 = hasattr(self._context, "execute_async_v3") and not hasattr(self._engine, "get_binding_index")
        self._io: CudaIO | None = None
        self._bindings: list[int] = []
        self._batch = 0
        self._inputs, self._outputs = self._io_names()

    @property
    def input_size(self) -> tuple[int, int]:
        return self._size

    def describe(self) -> str:
        api = "v3 named tensors" if self._v3 else "v2 bindings"
        return f"tensorrt {self.precision} ({self._file}, {api})"

    def _io_names(self) -> tuple[list[str], list[str]]:
        import tensorrt as trt

        if self._v3:
            names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
            inputs = [n for n in names if self._engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
            return inputs, [n for n in names if n not in inputs]
        legacy: Any = self._engine  # TensorRT 8.6 binding API (absent from the 10.x stubs)
        names = [legacy.get_binding_name(i) for i in range(legacy.num_bindings)]
        inputs = [n for n in names if legacy.binding_is_input(legacy.get_binding_index(n))]
        return inputs, [n for n in names if n not in inputs]

    def _prepare(self, batch: int) -> None:
        """Set the input shapes for ``batch`` and (re)allocate buffers; a no-op when the batch is unchanged."""
        import tensorrt as trt

        if batch == self._batch:
            return
        height, width = self._size
        shapes = {"image": (batch, height, width, 3), "user": (batch,)}
        specs: dict[str, tuple[tuple[int, ...], Any]] = {}
        legacy: Any = self._engine
        legacy_context: Any = self._context
        for name in self._inputs:
            if self._v3:
                self._context.set_input_shape(name, shapes[name])
                specs[name] = (shapes[name], trt.nptype(self._engine.get_tensor_dtype(name)))
            else:
                index = legacy.get_binding_index(name)
                legacy_context.set_binding_shape(index, shapes[name])
                specs[name] = (shapes[name], trt.nptype(legacy.get_binding_dtype(index)))
        for name in self._outputs:
            if self._v3:
                shape = tuple(int(d) for d in self._context.get_tensor_shape(name))
                specs[name] = (shape, trt.nptype(self._engine.get_tensor_dtype(name)))
            else:
                index = legacy.get_binding_index(name)
                shape = tuple(int(d) for d in legacy_context.get_binding_shape(index))
                specs[name] = (shape, trt.nptype(legacy.get_binding_dtype(index)))
        if self._io is not None:
            self._io.close()
        self._io = CudaIO(specs)
        if self._v3:
            for name in specs:
                self._context.set_tensor_address(name, self._io.address(name))
        else:
            self._bindings = [0] * legacy.num_bindings
            for name in specs:
                self._bindings[legacy.get_binding_index(name)] = self._io.address(name)
        self._batch = batch

    def infer(self, images: np.ndarray, users: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        batch = images.shape[0]
        self._prepare(batch)
        io = self._io
        assert io is not None
        io.upload("image", images)
        if "user" in self._inputs:
            io.upload("user", np.zeros(batch, np.int64) if users is None else users)
        if self._v3:
            ok = self._context.execute_async_v3(io.stream_handle)
        else:
            legacy: Any = self._context
            ok = legacy.execute_async_v2(bindings=self._bindings, stream_handle=io.stream_handle)
        if not ok:
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
