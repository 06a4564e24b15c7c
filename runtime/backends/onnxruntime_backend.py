"""ONNX Runtime backend: provider choice, session options and IO binding with preallocated outputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from memgaze.errors import fail
from memgaze.user_cache import user_cache_dir
from memgaze.runtime.backends.base import Backend
from memgaze.runtime.bundle import Bundle

# Best first; `auto` takes every available one in this order (ORT falls back along the list).
PROVIDER_PREFERENCE = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
SHORT_NAMES = {"tensorrt": "TensorrtExecutionProvider", "cuda": "CUDAExecutionProvider", "cpu": "CPUExecutionProvider"}


def choose_providers(requested: list[str] | None = None) -> list[str]:
    """Execution providers to use: ``requested`` (short or full names, checked), else TensorRT > CUDA > CPU."""
    available = ort.get_available_providers()
    if requested:
        chosen = [SHORT_NAMES.get(name.lower(), name) for name in requested]
        missing = [name for name in chosen if name not in available]
        if missing:
            fail(f"ONNX Runtime provider(s) {', '.join(missing)} not available here (available: {', '.join(available)})")
        return chosen
    return [name for name in PROVIDER_PREFERENCE if name in available]


def _provider_options(name: str) -> dict[str, Any]:
    if name == "TensorrtExecutionProvider":
        cache = user_cache_dir("ort-trt")
        cache.mkdir(parents=True, exist_ok=True)
        return {"trt_engine_cache_enable": True, "trt_engine_cache_path": str(cache)}
    return {}


SPIN_KEY = "session.intra_op.allow_spinning"


class OnnxRuntimeBackend(Backend):
    """One ORT session over the bundle's FP32 or INT8 ONNX (on the CPU provider alone, the bundle's
    CPU-oriented INT8 file where it has one); outputs bound once per batch size."""

    name = "onnxruntime"

    def __init__(
        self, bundle: Bundle, precision: str | None = None, *, threads: int | None = None, providers: list[str] | None = None
    ) -> None:
        chosen = choose_providers(providers)
        path, self.precision = bundle.onnx_model(precision, cpu=chosen == ["CPUExecutionProvider"])
        self.model_file = path.name
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.intra_op_num_threads = threads or 0
        # Idle intra-op threads sleep instead of spinning: the capture threads (decode, resize) need the same
        # cores. On 2 cores, spinning made memgaze-run 1.6-2x slower at default threads (memgaze-bench pipeline).
        options.add_session_config_entry(SPIN_KEY, "0")
        options.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(
                str(path), sess_options=options, providers=[(p, _provider_options(p)) for p in chosen]
            )
        except Exception as exc:  # ORT raises its own Fail/InvalidGraph types for a bad file
            fail(f"ONNX Runtime could not load {path}: {str(exc).splitlines()[0]}")
        inputs = {i.name for i in self._session.get_inputs()}
        if "image" not in inputs or {o.name for o in self._session.get_outputs()} < {"score", "heatmap"}:
            fail(f"{path} does not follow the memgaze graph contract (inputs image[,user]; outputs score, heatmap)")
        self._has_user = "user" in inputs
        self._input_hw = bundle.input_size
        self._map = bundle.map_size
        self._device = "cuda" if self._session.get_providers()[0] != "CPUExecutionProvider" else "cpu"
        self._binding = self._session.io_binding()
        self._outputs: dict[str, Any] = {}
        self._batch = 0

    @property
    def input_size(self) -> tuple[int, int]:
        return self._input_hw

    @property
    def providers(self) -> list[str]:
        return list(self._session.get_providers())

    def describe(self) -> str:
        return f"onnxruntime {self.precision} {self.model_file} ({', '.join(self.providers)})"

    def _bind_outputs(self, batch: int) -> None:
        """(Re)allocate and bind the output buffers for ``batch``; a no-op when the batch size is unchanged."""
        if batch == self._batch:
            return
        shapes = {"score": (batch,), "heatmap": (batch, 1, *self._map)}
        self._binding.clear_binding_outputs()
        for name, shape in shapes.items():
            if self._device == "cpu":
                value = ort.OrtValue.ortvalue_from_numpy(np.empty(shape, np.float32))
            else:
                value = ort.OrtValue.ortvalue_from_shape_and_type(shape, np.float32, "cuda", 0)
            self._binding.bind_ortvalue_output(name, value)
            self._outputs[name] = value
        self._batch = batch

    def infer(self, images: np.ndarray, users: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        batch = images.shape[0]
        self._bind_outputs(batch)
        self._binding.bind_cpu_input("image", np.ascontiguousarray(images, dtype=np.uint8))
        if self._has_user:
            ids = np.zeros(batch, np.int64) if users is None else np.ascontiguousarray(users, dtype=np.int64)
            self._binding.bind_cpu_input("user", ids)
        self._session.run_with_iobinding(self._binding)
        # Copies: the bound buffers are overwritten by the next call.
        return self._outputs["score"].numpy().copy(), self._outputs["heatmap"].numpy().copy()

    def close(self) -> None:
        self._outputs.clear()
        self._batch = 0
        self.__dict__.pop("_binding", None)
        self.__dict__.pop("_session", None)
