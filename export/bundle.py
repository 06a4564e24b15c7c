"""The deploy bundle: written into a temporary folder and renamed into place as a whole."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import memgaze
from memgaze.atomic import atomic_dir
from memgaze.errors import fail
from memgaze.export.graph import GraphSpec
from memgaze.manifest import MANIFEST_NAME, GateSamples, Manifest, file_entries, sha256_file

FP32_NAME = "model.onnx"
INT8_NAME = "model.int8.onnx"
ORT_CPU_INT8_NAME = "model.int8.ort.onnx"
CACHE_NAME = "calibration.cache"


def check_output(out: Path) -> None:
    """Fail early, in one line, when the bundle folder cannot be written."""
    if out.exists() and not out.is_dir():
        fail(f"cannot write the bundle to {out}: it exists and is not a folder")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out.parent):
            pass
    except OSError as exc:
        fail(f"cannot write the bundle to {out}: {exc.strerror or exc}")


@contextlib.contextmanager
def bundle_dir(out: Path) -> Iterator[Path]:
    """A temporary folder that becomes ``out`` only when the block finishes without an error."""
    check_output(out)
    with atomic_dir(out) as tmp:
        yield tmp
        _make_readable(tmp)


def _make_readable(folder: Path) -> None:
    """Temporary files are private (0600/0700); a published bundle is readable like any folder."""
    umask = os.umask(0)
    os.umask(umask)
    folder.chmod(0o777 & ~umask)
    for path in folder.iterdir():
        if path.is_file():
            path.chmod(0o666 & ~umask)


def manifest(
    folder: Path, spec: GraphSpec, checkpoint: Path, *,
    models: dict[str, str], cpu_models: dict[str, str], calibration: dict[str, Any] | None,
    accuracy: dict[str, Any] | None, gate_samples: GateSamples | None, tensorrt_check: dict[str, Any],
    extra: dict[str, Any],
) -> Manifest:
    """The manifest (docs/internals.md keys) for the files already in ``folder``; ``cpu_models`` are
    the ONNX Runtime CPU variants of ``models`` entries (``onnxruntime_cpu``); ``tensorrt_check`` the verdict of
    :mod:`memgaze.export.trt_compat` on each file meant for TensorRT. TensorRT plans are
    registered afterwards, by the same code ``memgaze-engine`` runs."""
    height, width = spec.input_size
    names = sorted(p.name for p in folder.iterdir() if p.is_file() and p.name != MANIFEST_NAME)
    return Manifest(
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        memgaze_version=memgaze.__version__,
        source_checkpoint={"path": str(checkpoint), "sha256": sha256_file(checkpoint)},
        input={"name": "image", "height": height, "width": width, "layout": "NHWC", "dtype": "uint8", "color": "BGR"},
        outputs={
            "score": {"dtype": "float32", "shape": ["N"]},
            "heatmap": {"dtype": "float32", "shape": ["N", 1, *spec.map_size]},
        },
        map_size=list(spec.map_size),
        users=list(spec.users),
        personalized=spec.personalized,
        normalization=spec.normalization,
        precisions=list(models),
        models=models,
        onnxruntime_cpu=cpu_models,
        calibration=calibration,
        accuracy=accuracy,
        gate_samples=gate_samples,
        tensorrt_check=tensorrt_check,
        extra=extra,
        files=file_entries(folder, names),
    )


def sizes(folder: Path) -> dict[str, int]:
    """Bytes of every file in the bundle, for the summary table."""
    return {p.name: p.stat().st_size for p in sorted(folder.iterdir()) if p.is_file()}


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"

