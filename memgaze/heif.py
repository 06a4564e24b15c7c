"""Phone photos (HEIC/HEIF, AVIF) through Pillow and pillow-heif (``pip install "memgaze[heif]"``).

OpenCV cannot read HEIC, and the AVIF it reads ignores the EXIF orientation. These formats are decoded by
pillow-heif (libheif: HEIC/HEIF) and Pillow (AVIF, in its wheels since 11.3), turned upright as the file asks
(the container's rotation, applied by libheif, or the EXIF orientation, applied by Pillow) and handed on as the
uint8 BGR array every other photo is. Without them, a file of these formats is an error that names the extra.
"""

from __future__ import annotations

import functools
import io
from typing import Any

import numpy as np

HEIF_SUFFIXES = frozenset({".heic", ".heif", ".avif"})
INSTALL_HINT = 'pip install "memgaze[heif]"'


@functools.lru_cache(maxsize=1)
def _pillow() -> tuple[Any, Any] | None:
    """(PIL.Image, PIL.ImageOps) with pillow-heif's HEIF opener registered; None without pillow-heif or Pillow."""
    try:
        import pillow_heif
        from PIL import Image, ImageOps
    except ImportError:
        return None
    pillow_heif.register_heif_opener()
    return Image, ImageOps


def heif_support() -> bool:
    """Whether HEIC/HEIF and AVIF photos can be decoded here (pillow-heif and a Pillow with AVIF)."""
    if _pillow() is None:
        return False
    from PIL import features

    return bool(features.check("avif"))


def missing_decoder_message() -> str:
    """The one line a HEIC/HEIF/AVIF file gets where it cannot be decoded."""
    return f"HEIC/HEIF/AVIF photos need pillow-heif: {INSTALL_HINT}"


def decode_heif(data: bytes) -> np.ndarray:
    """A HEIC/HEIF/AVIF file's bytes as an upright uint8 BGR ``[H, W, 3]`` array; ValueError (one line) when it cannot
    be decoded or the decoder is missing."""
    modules = _pillow()
    if modules is None:
        raise ValueError(missing_decoder_message())
    image_module, ops = modules
    try:
        with image_module.open(io.BytesIO(data)) as opened:
            upright = ops.exif_transpose(opened).convert("RGB")
    except Exception as exc:  # noqa: BLE001 - libheif and Pillow raise many kinds; one bad file is one row
        raise ValueError(f"cannot decode this HEIF/AVIF file: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    return np.ascontiguousarray(np.asarray(upright)[:, :, ::-1])
