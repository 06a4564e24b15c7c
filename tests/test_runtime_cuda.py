"""The TensorRT backend's CUDA plumbing (pinned host buffers, device buffers, one stream) on a real GPU.

Skipped with a reason where pycuda or a CUDA GPU is absent (CI, laptops); run it on the Jetson.
"""

from __future__ import annotations

import numpy as np
import pytest

cuda = pytest.importorskip("pycuda.driver", reason="pycuda is not installed (pip install memgaze[jetson])")

from memgaze.runtime.backends.tensorrt_backend import CudaContext, CudaIO  # noqa: E402


@pytest.fixture()
def context():
    try:
        ctx = CudaContext(0)
    except Exception as exc:  # pycuda raises its own driver errors when there is no GPU
        pytest.skip(f"no usable CUDA GPU: {exc}")
    yield ctx
    ctx.close()


def test_pinned_buffers_and_stream_round_trip(context) -> None:
    shape = (2, 64, 64, 3)
    io = CudaIO({"a": (shape, np.uint8), "b": (shape, np.uint8), "ids": ((2,), np.int32)})
    try:
        assert io.host["a"].flags["C_CONTIGUOUS"] and io.stream_handle != 0
        data = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
        io.upload("a", data)
        io.upload("ids", np.array([3, 4], np.int64))  # int64 user ids into an int32 binding
        cuda.memcpy_dtod_async(io.device["b"], io.device["a"], data.nbytes, io.stream)
        io.download("b")
        io.download("ids")
        io.synchronize()
        np.testing.assert_array_equal(io.host["b"], data)
        np.testing.assert_array_equal(io.host["ids"], [3, 4])
    finally:
        io.close()
