"""Per-epoch metric log: ``log.csv``, ``curves.png`` (matplotlib Agg) and TensorBoard when installed."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

from memgaze.atomic import atomic_path, write_text

LOG_NAME = "log.csv"
CURVES_NAME = "curves.png"


class MetricLog:
    """Rows of ``{stage, epoch, metric: value}``; every :meth:`log` rewrites the CSV and the plot."""

    def __init__(self, out: Path, resume: bool) -> None:
        self.out = out
        self.rows: list[dict[str, Any]] = _read_rows(out / LOG_NAME) if resume else []
        self._tb = _tensorboard_writer(out / "tensorboard")

    def log(self, stage: str, epoch: int, metrics: dict[str, float]) -> None:
        """Record ``metrics`` of ``stage``'s ``epoch`` (1-based), replacing that epoch and later ones."""
        self.rows = [r for r in self.rows if not (r["stage"] == stage and int(r["epoch"]) >= epoch)]
        self.rows.append({"stage": stage, "epoch": epoch, **metrics})
        self._write_csv()
        plot_curves(self.rows, self.out / CURVES_NAME)
        if self._tb is not None:
            for key, value in metrics.items():
                self._tb.add_scalar(f"{stage}/{key}", value, epoch)
            self._tb.flush()

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()

    def _write_csv(self) -> None:
        fields = ["stage", "epoch"]
        for row in self.rows:
            fields += [k for k in row if k not in fields]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=fields)
        writer.writeheader()
        writer.writerows(self.rows)
        write_text(self.out / LOG_NAME, buffer.getvalue())


def _read_rows(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [
        {k: v if k == "stage" else int(v) if k == "epoch" else float(v) for k, v in row.items() if v not in ("", None)}
        for row in rows
        if row.get("stage") and row.get("epoch")
    ]


def _tensorboard_writer(folder: Path) -> Any:
    """A TensorBoard ``SummaryWriter``, or None when tensorboard is not installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(folder))


def plot_curves(rows: list[dict[str, Any]], path: Path) -> None:
    """One panel per metric, one line per stage, epochs on x; written atomically as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    metrics = sorted({k for row in rows for k in row if k not in ("stage", "epoch")})
    stages = list(dict.fromkeys(row["stage"] for row in rows))
    columns = min(3, max(1, len(metrics)))
    lines = max(1, math.ceil(len(metrics) / columns))
    fig, axes = plt.subplots(lines, columns, figsize=(4.2 * columns, 3.0 * lines), squeeze=False)
    for ax, metric in zip(axes.flat, metrics):
        for stage in stages:
            points = [(r["epoch"], r[metric]) for r in rows if r["stage"] == stage and metric in r]
            if points:
                xs, ys = zip(*points)
                ax.plot(xs, ys, marker="o", markersize=3, label=stage)
        ax.set_title(metric, fontsize=9)
        ax.set_xlabel("epoch", fontsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(metrics):]:
        ax.axis("off")
    # fixed margins: tight_layout measured every tick label first, two thirds of the cost of a plot
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.12 / lines, top=1 - 0.08 / lines, wspace=0.28, hspace=0.45)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)
