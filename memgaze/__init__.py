"""memgaze: personalized image memorability and gaze prediction, from training to the edge.

``memgaze.load(bundle)`` opens a deploy bundle as a :class:`memgaze.runtime.api.Model` (``predict``, ``stream``).
Importing memgaze is light: the runtime (numpy, OpenCV, ONNX Runtime or TensorRT) loads on first use of ``load``,
``Model`` or ``Prediction``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Model", "Prediction", "MemgazeError", "load", "__version__"]

if TYPE_CHECKING:
    from memgaze.errors import MemgazeError
    from memgaze.runtime.api import Model, Prediction, load


def __getattr__(name: str) -> Any:
    """``memgaze.load``, ``Model``, ``Prediction`` and ``MemgazeError``, imported on first access."""
    if name in ("load", "Model", "Prediction"):
        from memgaze.runtime import api

        return getattr(api, name)
    if name == "MemgazeError":
        from memgaze.errors import MemgazeError

        return MemgazeError
    raise AttributeError(f"module 'memgaze' has no attribute {name!r}")
