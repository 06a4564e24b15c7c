"""Agreement inside groups of similar photos: how well a model orders photos of one kind the way the reference does.

A pooled Spearman ρ over very different photos (fish, monuments, wallpapers) rewards telling the kinds apart;
a user ranks one collection at a time. ``groups.json`` beside the photos (``DATA/groups.json``) names, for
each grouping (e.g. ``package``, ``scene``), the group of each photo: ``{"scene": {"a.jpg": "animals", ...}}``.
A photo a grouping does not name is left out of it. For each grouping: ρ inside every group of at least
:data:`MIN_GROUP` photos, their unweighted mean over the groups, its spread over the groups (standard
deviation, lowest and highest), and the photos counted.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from memgaze.bench.report import Block, Heading, Para, Table
from memgaze.correlation import spearman
from memgaze.errors import fail

GROUPS_FILE = "groups.json"
MIN_GROUP = 10  # in fewer photos, ρ swings by ±0.3 with one photo more or less


def read_groupings(path: Path) -> dict[str, dict[str, str]]:
    """The groupings of a ``groups.json`` (grouping → photo → group); one-line error for a malformed file."""
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        fail(f"{path} is not valid JSON: {exc}")
    if not isinstance(data, dict) or not data or not all(_is_grouping(groups) for groups in data.values()):
        fail(f"{path} must map each grouping to an object of photo name → group name")
    return data


def _is_grouping(groups: Any) -> bool:
    return isinstance(groups, dict) and all(isinstance(value, str) for value in groups.values())


def group_agreement(scores: np.ndarray, reference: np.ndarray, names: list[str], groups: dict[str, str]) -> dict[str, Any]:
    """ρ of ``scores`` against ``reference`` inside each group (photos in the order of ``names``), and their summary."""
    members: dict[str, list[int]] = {}
    for index, name in enumerate(names):
        if name in groups:
            members.setdefault(groups[name], []).append(index)
    rows: list[dict[str, Any]] = [{"group": group, "photos": len(index), "spearman": spearman(scores[index], reference[index])}
                                  for group, index in sorted(members.items()) if len(index) >= MIN_GROUP]
    values = np.array([row["spearman"] for row in rows], np.float64)
    summary = {"mean": float(values.mean()), "std": float(values.std()), "min": float(values.min()),
               "max": float(values.max())} if len(values) else {"mean": None, "std": None, "min": None, "max": None}
    return {"groups": rows, **summary, "photos": sum(row["photos"] for row in rows), "min_group": MIN_GROUP}


def add_within(result: dict[str, Any], groupings: dict[str, dict[str, str]]) -> dict[str, Any]:
    """``result`` (an ``agreement.json`` document) with each row's within-group agreement, from the per-photo scores
    it keeps; the groupings go into its settings."""
    settings = result["settings"]
    if "reference_scores" not in settings:
        fail("this agreement.json keeps no per-photo scores (written by an older memgaze): run the models again")
    names, reference = settings["photos"], np.asarray(settings["reference_scores"], np.float64)
    for row in scored_rows(result):
        scores = np.asarray(row["scores"], np.float64)
        row["within"] = {name: group_agreement(scores, reference, names, groups) for name, groups in groupings.items()}
    settings["groupings"] = groupings
    return result


def scored_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows of an ``agreement.json`` document, then the reference's own on mirrored photos where it has one."""
    mirrored = result.get("reference_mirrored")
    return result["rows"] + ([mirrored] if mirrored else [])


def summary_text(within: dict[str, Any]) -> str:
    """One line: each grouping's mean ρ over its groups, with their spread."""
    return "; ".join(f"within {name}: mean ρ {w['mean']:.3f} over {len(w['groups'])} groups "
                     f"(sd {w['std']:.3f}, {w['min']:.3f}–{w['max']:.3f})" for name, w in within.items() if w["mean"] is not None)


def section(result: dict[str, Any]) -> list[Block]:
    """Report blocks: per grouping, each row's ρ inside every group and the mean with its spread."""
    rows = [r for r in scored_rows(result) if "within" in r]
    if not rows:
        return []
    blocks: list[Block] = [Heading("Agreement inside groups of similar photos"),
                           Para(f"Spearman ρ against the reference inside each group of at least {MIN_GROUP} photos "
                                "(groups.json beside the photos); mean = unweighted mean over the groups, sd and range over "
                                "the groups.")]
    for name in rows[0]["within"]:
        groups = [(g["group"], g["photos"]) for g in rows[0]["within"][name]["groups"]]
        header = ["model", "precision", *(f"{g} ({n})" for g, n in groups), "mean ρ", "sd", "range"]
        table = []
        for r in rows:
            w = r["within"][name]
            by_group = {g["group"]: g["spearman"] for g in w["groups"]}
            spread = f"{w['min']:.3f}–{w['max']:.3f}" if w["mean"] is not None else "n/a"
            table.append([r["model"], r["precision"], *(by_group[g] for g, _ in groups), w["mean"], w["std"], spread])
        blocks += [Para(f"Grouping: {name}."), Table(header, table)]
    return blocks
