"""``OUT/metrics.json``: what each stage of this and earlier runs into the same folder measured."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

from memgaze.atomic import write_json
from memgaze.console import WarningCounter
from memgaze.layout import SPLITS, read_split
from memgaze.train.data.dataset import list_users

METRICS_FILE = "metrics.json"


@dataclasses.dataclass
class MetricsRecord:
    """The entries of metrics.json: ``teacher``/``student`` (params, MACs, test metrics), ``personalize``
    (per user), ``distillation`` (label-free), ``data`` and ``macs_ratio``. A student-only run keeps the
    teacher's entry of an earlier run."""

    path: Path
    entries: dict[str, Any]

    @classmethod
    def load(cls, out: Path) -> MetricsRecord:
        """The record of ``out`` (empty when there is none, or it is unreadable)."""
        path = out / METRICS_FILE
        try:
            value = json.loads(path.read_text())
        except (OSError, ValueError):
            value = {}
        return cls(path, value if isinstance(value, dict) else {})

    def set(self, key: str, value: Any) -> None:
        self.entries[key] = value

    def set_user(self, user: str, result: dict[str, Any]) -> None:
        """A user added by the personalize stage."""
        self.entries.setdefault("personalize", {})[user] = result

    def forget(self, *keys: str) -> None:
        """Drop entries that no longer describe the models in the folder."""
        for key in keys:
            self.entries.pop(key, None)

    def write(self, root: Path, synthetic: bool, fold: int, warnings: WarningCounter) -> None:
        """Add the data summary of ``root`` and the teacher/student MACs ratio; write atomically.
        ``warnings`` is the run's counter, so rows the stages already reported stay silent."""
        counts = {f"{split}_images": len(read_split(root, split, fold, warnings)) for split in SPLITS}
        self.entries["data"] = {"path": str(root), "synthetic": synthetic, **counts, "users": list_users(root)}
        teacher, student = self.entries.get("teacher"), self.entries.get("student")
        if teacher and student:
            self.entries["macs_ratio"] = teacher["macs"] / max(1, student["macs"])
        write_json(self.path, _json_safe(self.entries))


def _json_safe(value: Any) -> Any:
    """NaN/inf → None so metrics.json is strict JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value
