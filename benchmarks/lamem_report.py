"""The report section of ``lamem.json`` (``memgaze-bench lamem``): the mean ± std table with the
published figures and their sources, the per-split figures, the ablation and the peers' caveats."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, cast

from memgaze.bench.report import Block, Bullets, Cell, Figure, Heading, Para, Table, plot_bars

FIGURE = "lamem_spearman.png"
DIGITS = {"mse": 4}  # decimals per metric; 3 for the others
SUMMARY_KEYS = ("spearman", "pearson", "mse", "cc_own_user", "nss_own_user")
HEADERS = {"spearman": "Spearman ρ", "pearson": "Pearson r", "mse": "MSE", "cc_own_user": "map CC (own user)",
           "nss_own_user": "NSS (own user)"}


def _num(value: Any, key: str) -> Cell:
    """A metric as fixed-decimal text (``–`` for a missing or undefined one)."""
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return f"{value:.{DIGITS.get(key, 3)}f}"


def _pm(mean: float | None, std: float | None, key: str) -> Cell:
    if mean is None:
        return None
    return _num(mean, key) if std is None else f"{_num(mean, key)} ± {_num(std, key)}"


def _summary_table(result: dict[str, Any]) -> Table:
    rows: list[list[Cell]] = []
    for entry in result["summary"]:
        rows.append([entry["model"], len(entry["folds"])]
                    + [_pm(entry[f"{key}_mean"], entry[f"{key}_std"], key) for key in SUMMARY_KEYS]
                    + ["measured here" if entry["kind"] != "peer" else "measured here (peer)"])
    for number, anchor in enumerate(result["anchors"], start=1):
        rows.append([anchor["model"], "as published", str(anchor["spearman"]), None,
                     None if anchor["mse"] is None else str(anchor["mse"]), None, None, f"published [{number}]"])
    return Table(["model", "splits", *HEADERS.values(), "source"], rows)


def _fold_table(result: dict[str, Any]) -> Table:
    return Table(["model", "split", "test images", *HEADERS.values()],
                 [[r["model"], r["fold"], r["images"], *(_num(r.get(key), key) for key in SUMMARY_KEYS)] for r in result["rows"]])


def _ablation_blocks(ablation: dict[str, Any]) -> list[Block]:
    keys = ("spearman", "mse", "cc_own_user")
    headers = ["split"] + [f"{HEADERS[key]} {which}" for key in keys for which in ("with gaze", "without", "Δ")]
    rows: list[list[Cell]] = []
    for entry in ablation["folds"]:
        rows.append([cast(Cell, entry["fold"])] + [_num(entry[key][part], key) for key in keys for part in ("gaze", "no_gaze", "delta")])
    rows.append([cast(Cell, "mean ± std")] + [cell for key in keys for cell in
                                 (None, None, _pm(ablation["delta"][key]["mean"], ablation["delta"][key]["std"], key))])
    return [
        Heading("Ablation: gaze imitation against none", 3),
        Para("The student trained with the gaze-imitation loss against the same student without it "
             "(loss.student_gaze = 0), with the same seed, split and teacher; Δ = with − without, per split, "
             "then the mean ± std of those paired differences."),
        Table(headers, rows),
    ]


def section(result: dict[str, Any], folder: Path) -> list[Block]:
    """Report blocks for a ``lamem.json`` result; writes the ρ bar chart into ``folder``."""
    s = result["settings"]
    blocks: list[Block] = [
        Heading("LaMem protocol: every split, then mean ± std"),
        Para(f"Data {s['data']}, splits {', '.join(map(str, s['folds']))} (test images per split: "
             + ", ".join(f"{k}: {v}" for k, v in s["test_images"].items()) + "). Each model is scored against the "
             "ground-truth scores of each split's test list; ± is the " + s["std"] + ". Published figures are "
             "quoted from their papers, not rerun here."),
    ]
    if s["synthetic"]:
        blocks.append(Para("SYNTHETIC data: these figures prove that the harness runs end to end (training every "
                           "split, testing, peers, ablation, report); they say nothing about how well the method "
                           "predicts human memorability."))
    blocks += [Heading("Mean ± std over the splits", 3), _summary_table(result)]
    blocks.append(Bullets([f"[{n}] {a['source']} (checked: {a['checked']})"
                           for n, a in enumerate(result["anchors"], start=1)]))
    if result["peers"]:
        blocks.append(Bullets([f"Peer {p['model']} ({p['describe']}): {p['caveat']}." for p in result["peers"]]))
    labels = [e["model"] for e in result["summary"] if e["spearman_mean"] is not None]
    values = [e["spearman_mean"] for e in result["summary"] if e["spearman_mean"] is not None]
    labels += [f"{a['model']} (published)" for a in result["anchors"]]
    values += [a["spearman"] for a in result["anchors"]]
    plot_bars(labels, values, folder / FIGURE, "Spearman ρ (mean over the splits)", "Spearman ρ on the test lists", digits=3)
    blocks.append(Figure(FIGURE, "Mean Spearman ρ over the splits, beside the published LaMem figures"))
    if result["ablation"]:
        blocks += _ablation_blocks(result["ablation"])
    blocks += [Heading("Per split", 3), _fold_table(result)]
    return blocks
