"""The one precision order (fastest first) and the one unknown-precision error, wherever a precision is chosen."""

from __future__ import annotations

import pytest

from memgaze.errors import MemgazeError
from memgaze.precision import check_precision, precision_rank


def test_order_is_fastest_first_and_unknown_ranks_last() -> None:
    assert sorted(["fp32", "bf16", "int8", "fp16"], key=precision_rank) == ["int8", "fp16", "fp32", "bf16"]


@pytest.mark.parametrize("where", ["core", "backend", "recipe", "latency"])
def test_an_unknown_precision_is_the_same_one_line_error_everywhere(where: str) -> None:
    from memgaze.bench.latency import run_latency
    from memgaze.runtime.backends import open_backend
    from memgaze.trt.recipe import Recipe, TrtVersion

    calls = {
        "core": lambda: check_precision("int4"),
        "backend": lambda: open_backend(None, "onnxruntime", "int4"),  # type: ignore[arg-type]  # refused before the bundle is read
        "recipe": lambda: Recipe("m.onnx", "int4", TrtVersion.parse("10.3"), qdq=True),
        "latency": lambda: run_latency(None, ["onnxruntime"], ["int4"], [1]),  # type: ignore[arg-type]
    }
    with pytest.raises(MemgazeError) as caught:
        calls[where]()
    assert str(caught.value) == "unknown precision 'int4'; choose one of int8, fp16, fp32"
