"""The bundle's gate samples: :data:`SAMPLE_COUNT` real frames at the model's size (held-out calibration frames
first) with their FP32 outputs.

``memgaze-export`` writes them (``gate_samples.npz``, listed and checksummed in the manifest) so a
device with no dataset can check its own TensorRT plan against FP32 with :mod:`memgaze.gate`.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from memgaze.atomic import atomic_path
from memgaze.console import console
from memgaze.errors import fail
from memgaze.gate import MIN_SAMPLES, AccuracyReport, compare_outputs
from memgaze.manifest import GateSamples, Manifest

SAMPLES_NAME = "gate_samples.npz"
SAMPLE_COUNT = MIN_SAMPLES

Infer = Callable[[np.ndarray, "np.ndarray | None"], "tuple[np.ndarray, np.ndarray]"]


@dataclass
class Samples:
    """uint8 ``frames [N,H,W,3]`` (BGR), ``users [N]`` int64 or None, and the FP32 ``scores [N]`` / ``heatmaps [N,1,h,w]``."""

    frames: np.ndarray
    users: np.ndarray | None
    scores: np.ndarray
    heatmaps: np.ndarray


def write_samples(folder: Path, samples: Samples, source: str) -> GateSamples:
    """Write ``folder/gate_samples.npz`` atomically; the manifest entry that describes it."""
    arrays = {"frames": samples.frames.astype(np.uint8), "scores": samples.scores.astype(np.float32),
              "heatmaps": samples.heatmaps.astype(np.float32)}
    if samples.users is not None:
        arrays["users"] = samples.users.astype(np.int64)
    with atomic_path(folder / SAMPLES_NAME) as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(handle, **arrays)  # type: ignore[arg-type]
    return GateSamples(file=SAMPLES_NAME, frames=len(samples.frames), source=source)


def read_samples(root: Path, manifest: Manifest) -> Samples:
    """The bundle's samples (checksummed by the manifest's ``files``); one-line error when absent or malformed."""
    entry = manifest.gate_samples
    if entry is None:
        fail(f"bundle {root} has no gate samples to check a TensorRT plan against FP32; re-export it with this memgaze")
    path = root / entry.file
    try:
        with np.load(path, allow_pickle=False) as data:
            samples = Samples(
                frames=data["frames"], users=data["users"] if "users" in data else None,
                scores=data["scores"], heatmaps=data["heatmaps"],
            )
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        fail(f"cannot read the gate samples {path}: {exc}")
    height, width = manifest.input_size
    if samples.frames.dtype != np.uint8 or samples.frames.shape[1:] != (height, width, 3):
        fail(f"{path}: frames are {samples.frames.dtype} {samples.frames.shape[1:]}, not uint8 ({height}, {width}, 3)")
    if len(samples.scores) != len(samples.frames) or len(samples.heatmaps) != len(samples.frames):
        fail(f"{path}: {len(samples.frames)} frames but {len(samples.scores)} scores and {len(samples.heatmaps)} heatmaps")
    if len(samples.frames) < SAMPLE_COUNT:
        console.print(f"[yellow]warning:[/yellow] {path} holds {len(samples.frames)} gate samples, fewer than the "
                      f"{SAMPLE_COUNT} the gate is set for (an older export, or a tiny calibration folder); re-export "
                      "the bundle with more calibration frames for a trustworthy verdict", soft_wrap=True)
    return samples


def check_against_fp32(infer: Infer, samples: Samples, source: str = "gate samples") -> AccuracyReport:
    """Run ``infer(images, users)`` one frame at a time (any plan takes batch 1) and judge it against the FP32 outputs."""
    scores, heatmaps = [], []
    for index in range(len(samples.frames)):
        users = None if samples.users is None else samples.users[index:index + 1]
        score, heatmap = infer(samples.frames[index:index + 1], users)
        scores.append(np.asarray(score).reshape(1))
        heatmaps.append(np.asarray(heatmap).reshape(1, *samples.heatmaps.shape[1:]))
    return compare_outputs((samples.scores, samples.heatmaps), (np.concatenate(scores), np.concatenate(heatmaps)), source)
