"""The built-in model card's measures of generalization: agreement inside groups of similar photos, and on packages
the model never saw (leave-packages-out), at every seed, with the goals they are held to (used by tools/builtin.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from memgaze.bench.agreement import interval

GOALS = {"within": 0.75, "packages_out": 0.80, "int8_delta": 0.01}
PACKAGES_OUT = "packages-out"
PEOPLE = (
    "These are agreements with ResMem, the teacher, not with people. ResMem's authors report Spearman ρ 0.67 against "
    "human memorability scores on held-out images of their LaMem + MemCat mixture; people agree with each other "
    "at ρ 0.68 on LaMem (Khosla et al. 2015). A user who measured both models on 2,632 real outdoor landscape photos "
    "with human scores (a published set, kept outside this project so that no recipe is tuned to it) reported, for v3: "
    "ResMem ρ 0.49 (95% 0.46–0.52) and memgaze-lite0-resmem v3 0.41 (0.37–0.44) against the human scores, and ρ 0.56 "
    "between the two models' scores on those photos. So on one kind of scene that student kept about 80% of its teacher's "
    "agreement with people, and its agreement with ResMem there was near this card's within-kind figures, not its "
    "pooled ones. Those figures are the user's, not measured here."
)


def _rows(path: Path) -> dict[str, dict[str, Any]]:
    return {row["precision"]: row for row in json.loads(path.read_text())["rows"]}


def _mean(within: dict[str, Any]) -> str:
    return f"{within['mean']:.3f} (sd {within['std']:.3f})" if within["mean"] is not None else "n/a"


def within_table(run: Path, seeds: list[int]) -> str:
    """ρ inside each scene kind (FP32) at every seed, and the means over kinds and over packages, FP32 and INT8."""
    reports = {seed: _rows(run / f"seed{seed}" / "report" / "agreement.json") for seed in seeds}
    first = reports[seeds[0]]["fp32"]["within"]
    kinds = [(g["group"], g["photos"]) for g in first["scene"]["groups"]]
    packages = ", ".join(f"{g['group']} ({g['photos']})" for g in first["package"]["groups"])
    lines = [f"| seed | {' | '.join(f'{k} ({n})' for k, n in kinds)} | mean over kinds, FP32 | INT8 ONNX Runtime | "
             f"mean over packages, FP32 |", "|---|" + "---|" * (len(kinds) + 3)]
    for seed, rows in reports.items():
        fp32, int8 = rows["fp32"]["within"], rows["int8 (ONNX Runtime CPU)"]["within"]
        by_kind = {g["group"]: g["spearman"] for g in fp32["scene"]["groups"]}
        lines.append(f"| {seed} | {' | '.join(f'{by_kind[k]:.3f}' for k, _ in kinds)} | **{_mean(fp32['scene'])}** | "
                     f"{_mean(int8['scene'])} | {_mean(fp32['package'])} |")
    return "\n".join(lines) + f"\n\nPackages with at least 10 held-out photos: {packages}."


def packages_out_table(run: Path, seeds: list[int], held_out: list[str]) -> str:
    """The leave-packages-out models' agreement on the photos of the packages they never saw, at every seed."""
    lines = ["| seed | Spearman ρ vs ResMem | ρ 95% interval | map CC | mean ρ over kinds | mean ρ over packages |",
             "|---|---|---|---|---|---|"]
    photos = 0
    for seed in seeds:
        path = run / PACKAGES_OUT / f"seed{seed}" / "report" / "agreement.json"
        photos = json.loads(path.read_text())["settings"]["images"]
        row = _rows(path)["fp32"]
        lines.append(f"| {seed} | **{row['spearman']:.3f}** | {interval(row)} | {row['map_cc']:.3f} | "
                     f"{_mean(row['within']['scene'])} | {_mean(row['within']['package'])} |")
    names = ", ".join(f"`{name}`" for name in held_out)
    return (f"Each seed was trained again without the packages {names}, and measured on their {photos} photos, whole "
            f"(FP32):\n\n" + "\n".join(lines))


def goals_line(run: Path, seeds: list[int]) -> str:
    """The generalization goals and which seeds hold them."""
    within, out, deltas = [], [], []
    for seed in seeds:
        rows = _rows(run / f"seed{seed}" / "report" / "agreement.json")
        within.append(rows["fp32"]["within"]["scene"]["mean"])
        out.append(_rows(run / PACKAGES_OUT / f"seed{seed}" / "report" / "agreement.json")["fp32"]["spearman"])
        deltas += [abs(r["within"]["scene"]["mean"] - within[-1]) for k, r in rows.items() if k != "fp32"]

    def verdict(values: list[float], goal: float) -> str:
        held = sum(v >= goal for v in values)
        return "held at every seed" if held == len(values) else f"held at {held} of {len(values)} seeds"

    return (f"Goals: mean ρ inside scene kinds ≥ {GOALS['within']} ({verdict(within, GOALS['within'])}: "
            f"{', '.join(f'{v:.3f}' for v in within)}); leave-packages-out ρ ≥ {GOALS['packages_out']} "
            f"({verdict(out, GOALS['packages_out'])}: {', '.join(f'{v:.3f}' for v in out)}); the INT8 files' mean inside "
            f"kinds within {max(deltas):.3f} of FP32.")
