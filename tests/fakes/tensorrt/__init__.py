"""Stand-in for the parts of TensorRT's Python API the runtime backend calls (see tests/fakes/README.md).

A "plan" is JSON: ``{"max_batch": 8, "size": [H, W], "map": [h, w], "user": bool}``. Executing it reads the image
buffer at its bound address and writes ``score`` = mean pixel / 255 (+ 0.01 × user) and a heatmap of ones / (h·w),
so a test can tell every frame of a batch apart and see that the slices line up.
"""

from __future__ import annotations

import json

import numpy as np

import pycuda.driver as _cuda

__version__ = "10.3.0"


class Logger:
    WARNING = 2
    ERROR = 1

    def __init__(self, severity: int = 2) -> None:
        self.severity = severity


class TensorIOMode:
    INPUT = "input"
    OUTPUT = "output"


class DataType:
    UINT8 = "uint8"
    INT64 = "int64"
    FLOAT = "float32"


def nptype(dtype: str) -> type:
    return np.dtype(dtype).type


class Builder:  # only its presence matters (memgaze.trt.probe.tensorrt_module)
    pass


class ExecutionContext:
    def __init__(self, engine: "CudaEngine") -> None:
        self.engine = engine
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.addresses: dict[str, int] = {}

    def set_input_shape(self, name: str, shape: tuple[int, ...]) -> bool:
        if not 1 <= shape[0] <= self.engine.spec["max_batch"]:
            return False
        self.shapes[name] = tuple(shape)
        return True

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        batch = self.shapes["image"][0]
        return {"score": (batch,), "heatmap": (batch, 1, *self.engine.spec["map"])}.get(name, self.shapes.get(name, ()))

    def set_tensor_address(self, name: str, address: int) -> None:
        self.addresses[name] = address

    def execute_async_v3(self, stream: int) -> bool:
        _cuda._require_context()
        batch = self.shapes["image"][0]
        height, width = self.engine.spec["size"]
        image = _cuda.MEMORY[self.addresses["image"]][: batch * height * width * 3].reshape(batch, -1)
        score = image.mean(axis=1).astype(np.float32) / 255.0
        if "user" in self.addresses:
            score += 0.01 * _cuda.MEMORY[self.addresses["user"]][: batch * 8].view(np.int64).astype(np.float32)
        _cuda.MEMORY[self.addresses["score"]][: batch * 4] = score.view(np.uint8)
        h, w = self.engine.spec["map"]
        heat = np.full(batch * h * w, 1.0 / (h * w), np.float32)
        _cuda.MEMORY[self.addresses["heatmap"]][: heat.nbytes] = heat.view(np.uint8)
        return True


class CudaEngine:
    def __init__(self, spec: dict) -> None:
        self.spec = spec
        self.names = ["image", *(["user"] if spec.get("user") else []), "score", "heatmap"]

    @property
    def num_io_tensors(self) -> int:
        return len(self.names)

    def get_tensor_name(self, index: int) -> str:
        return self.names[index]

    def get_tensor_mode(self, name: str) -> str:
        return TensorIOMode.INPUT if name in ("image", "user") else TensorIOMode.OUTPUT

    def get_tensor_dtype(self, name: str) -> str:
        return {"image": DataType.UINT8, "user": DataType.INT64}.get(name, DataType.FLOAT)

    def get_tensor_profile_shape(self, name: str, profile: int) -> list[tuple[int, ...]]:
        height, width = self.spec["size"]
        rest = (height, width, 3) if name == "image" else ()
        return [(1, *rest), (1, *rest), (self.spec["max_batch"], *rest)]

    def create_execution_context(self) -> ExecutionContext:
        _cuda._require_context()
        return ExecutionContext(self)


class Runtime:
    def __init__(self, logger: Logger) -> None:
        self.num_DLA_cores = 0

    def deserialize_cuda_engine(self, data: bytes) -> CudaEngine | None:
        try:
            return CudaEngine(json.loads(data))
        except ValueError:
            return None
