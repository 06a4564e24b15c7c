"""Run ONNX graphs in ONNX Runtime and verify the FP32 export against PyTorch."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

from memgaze.errors import fail
from memgaze.correlation import pearson_rows
from memgaze.export.graph import ExportGraph, is_personalized, model_users

MIN_IMAGES = 32
MAX_SCORE_DIFF = 1e-4
MIN_HEATMAP_CC = 0.9999
BATCH = 8


def inference_session(path: Path, threads: int = 0, exact_qdq: bool = False) -> ort.InferenceSession:
    """A CPU ONNX Runtime session (``threads`` 0 = ORT's default). ``exact_qdq`` turns graph optimizations
    off, so a Q/DQ graph runs as written (dequantize → float op → quantize): the arithmetic TensorRT
    implements, free of the x86 int8 kernels' own rounding and saturation."""
    options = ort.SessionOptions()
    options.log_severity_level = 3
    if exact_qdq:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    if threads:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def user_indices(config: dict[str, Any], count: int) -> np.ndarray | None:
    """Users cycled over the images (all of them exercised) for a personalized model, else None."""
    if not is_personalized(config):
        return None
    return (np.arange(count) % len(model_users(config))).astype(np.int64)


def run_onnx(sess: ort.InferenceSession, images: np.ndarray, users: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """(scores [N], heatmaps [N,1,h,w]) for uint8 NHWC ``images``, in batches."""
    names = {i.name for i in sess.get_inputs()}
    scores, maps = [], []
    for start in range(0, len(images), BATCH):
        feed: dict[str, np.ndarray] = {"image": images[start : start + BATCH]}
        if "user" in names:
            batch_users = users[start : start + BATCH] if users is not None else np.zeros(len(feed["image"]), np.int64)
            feed["user"] = batch_users
        score, heatmap = sess.run(["score", "heatmap"], feed)
        scores.append(score)
        maps.append(heatmap)
    return np.concatenate(scores), np.concatenate(maps)


def run_torch(graph: ExportGraph, images: np.ndarray, users: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """The same outputs from the PyTorch wrapper."""
    scores, maps = [], []
    with torch.no_grad():
        for start in range(0, len(images), BATCH):
            image = torch.from_numpy(np.ascontiguousarray(images[start : start + BATCH]))
            user = torch.from_numpy(users[start : start + BATCH]) if users is not None else None
            score, heatmap = graph(image, user)
            scores.append(score.numpy())
            maps.append(heatmap.numpy())
    return np.concatenate(scores), np.concatenate(maps)


def verification_images(frames: np.ndarray | None, size: tuple[int, int], count: int = MIN_IMAGES, seed: int = 0) -> np.ndarray:
    """``count`` uint8 NHWC images: the given frames first, then seeded noise to fill up."""
    have = [] if frames is None else list(frames[:count])
    rng = np.random.default_rng(seed)
    extra = rng.integers(0, 256, (count - len(have), size[0], size[1], 3), dtype=np.uint8)
    return np.stack([*have, *extra]) if have else extra


@dataclass
class VerifyReport:
    images: int
    max_abs_score_diff: float
    heatmap_cc_min: float

    def as_dict(self) -> dict[str, float | int]:
        return {"images": self.images, "max_abs_score_diff": self.max_abs_score_diff, "heatmap_cc_min": self.heatmap_cc_min}


def verify_onnx(model: nn.Module, config: dict[str, Any], path: Path, images: np.ndarray) -> VerifyReport:
    """Compare ONNX Runtime and PyTorch outputs on ``images`` (≥ 32); fail the export on a mismatch."""
    if len(images) < MIN_IMAGES:
        raise ValueError(f"verification needs at least {MIN_IMAGES} images, got {len(images)}")
    users = user_indices(config, len(images))
    ref = run_torch(ExportGraph(model, config).eval(), images, users)
    got = run_onnx(inference_session(path), images, users)
    report = VerifyReport(
        images=len(images),
        max_abs_score_diff=float(np.abs(ref[0] - got[0]).max()),
        heatmap_cc_min=float(pearson_rows(ref[1], got[1]).min()),
    )
    if report.max_abs_score_diff > MAX_SCORE_DIFF or report.heatmap_cc_min < MIN_HEATMAP_CC:
        fail(
            f"exported ONNX does not match PyTorch on {report.images} images: max |Δscore| "
            f"{report.max_abs_score_diff:.2e} (limit {MAX_SCORE_DIFF:.0e}), min heatmap CC "
            f"{report.heatmap_cc_min:.6f} (limit {MIN_HEATMAP_CC})"
        )
    return report
