"""Reading the MATLAB files of the SUN memorability and FIGRIM releases (scipy), with one-line errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from memgaze.errors import fail


def load_variable(path: Path, name: str) -> Any:
    """Variable ``name`` of the .mat file ``path`` (structs as attribute objects, 1-sized axes squeezed)."""
    import scipy.io

    if not path.is_file():
        fail(f"{path} not found: is the source folder the release as its publisher ships it?")
    try:
        data = scipy.io.loadmat(path, squeeze_me=True, struct_as_record=False, variable_names=[name])
    except NotImplementedError:
        fail(f"{path} is a MATLAB v7.3 (HDF5) file, which scipy cannot read: re-save it with save(..., '-v7')")
    except Exception as exc:  # noqa: BLE001 - scipy raises several types (even IndexError) for a damaged file
        fail(f"{path} is not a readable .mat file ({type(exc).__name__}: {exc})")
    if name not in data:
        fail(f"{path} holds no variable {name!r}")
    return data[name]


def records(value: Any) -> list[Any]:
    """The structs of a MATLAB struct array or cell array of structs, in order."""
    return list(np.atleast_1d(value).ravel())


def field(record: Any, name: str, where: str) -> Any:
    """``record.name``; one-line error naming ``where`` when the struct lacks it."""
    if not hasattr(record, name):
        fail(f"{where}: a record has no field {name!r} (fields: {', '.join(getattr(record, '_fieldnames', []))})")
    return getattr(record, name)


def hit_rate(counts: Any, where: str) -> float:
    """hits / (hits + misses) of a struct with those counts (NaN when nobody saw the image)."""
    hits, misses = float(field(counts, "hits", where)), float(field(counts, "misses", where))
    return hits / (hits + misses) if hits + misses > 0 else float("nan")
