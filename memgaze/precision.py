"""The precisions a model is exported, built and run at, in their one order: fastest first.

The order is the preference where none is asked for (the runtime's ONNX model and TensorRT plan); the
benchmarks list rows the other way round, from the FP32 reference to the fastest.
"""

from __future__ import annotations

from memgaze.errors import fail

PRECISIONS = ("int8", "fp16", "fp32")  # fastest first
REFERENCE = PRECISIONS[-1]  # FP32: what the others are checked against
REDUCED = PRECISIONS[:-1]  # the precisions below the reference


def precision_rank(precision: str) -> int:
    """Position of ``precision`` in :data:`PRECISIONS` (fastest 0); an unknown one ranks last."""
    return PRECISIONS.index(precision) if precision in PRECISIONS else len(PRECISIONS)


def check_precision(precision: str) -> str:
    """``precision`` when it is one of :data:`PRECISIONS`, else a one-line error naming them."""
    if precision not in PRECISIONS:
        fail(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    return precision
