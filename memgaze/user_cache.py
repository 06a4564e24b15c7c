"""memgaze's per-user cache folder: ``$XDG_CACHE_HOME/memgaze`` (``~/.cache/memgaze`` by default).

What is kept there can always be rebuilt: an external model's outputs on frames (keyed by the model
and the frames' contents), TensorRT plans of a bundle whose own folder is read-only (keyed by the
bundle's checksum), ONNX Runtime's TensorRT engine cache.
"""

from __future__ import annotations

import os
from pathlib import Path


def user_cache_dir(*parts: str) -> Path:
    """``$XDG_CACHE_HOME/memgaze/<parts...>`` (``~/.cache`` when the variable is unset or empty); not created."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base, "memgaze", *parts)
