"""``memgaze-export --eval-data``: the exported models' scores against a LaMem-layout test split."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from memgaze.console import WarningCounter
from memgaze.correlation import spearman
from memgaze.errors import fail
from memgaze.export.calibration import FrameRef, read_frames
from memgaze.export.verify import inference_session, run_onnx
from memgaze.layout import read_split

LIMIT = 256  # test images scored at most


def ground_truth_scores(root: Path, size: tuple[int, int], fp32: Path, int8: Path, personalized: bool) -> dict[str, Any]:
    """FP32 and INT8 Spearman and MSE against the test split of ``root`` (the generic viewer)."""
    warnings = WarningCounter("evaluation data")
    items = read_split(root, "test", 1, warnings)[:LIMIT]
    frames, names = read_frames([FrameRef(Path(item.path)) for item in items], size, warnings)
    truth = {Path(item.path).name: item.score for item in items}
    if len(frames) < 2:
        fail(f"--eval-data {root}: fewer than 2 readable test images")
    target = np.array([truth[n] for n in names], dtype=np.float64)
    users = np.zeros(len(frames), np.int64) if personalized else None
    scores = {name: run_onnx(inference_session(path), frames, users)[0] for name, path in (("fp32", fp32), ("int8", int8))}
    return {
        name: {"spearman": spearman(s, target), "mse": float(np.mean((s - target) ** 2))} for name, s in scores.items()
    } | {"images": len(target)}
