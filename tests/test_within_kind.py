"""Agreement inside groups of similar photos, the built-in photos' scene kinds, and `memgaze-bench agreement --from`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from memgaze import builtin
from memgaze.bench.cli import app
from memgaze.bench.machine import describe_machine
from memgaze.bench.within_kind import MIN_GROUP, add_within, group_agreement, read_groupings
from memgaze.errors import MemgazeError
from memgaze.builtin.photos import output_stem
from memgaze.builtin.scene_kinds import KINDS, OTHER, package_of, photo_groups, scene_kind


def test_agreement_inside_groups_sees_what_the_pooled_rho_hides() -> None:
    reference = np.concatenate([np.linspace(0.6, 0.7, 12), np.linspace(0.8, 0.9, 12), [0.5] * 3])
    kinds_only = np.concatenate([np.linspace(0.7, 0.6, 12), np.linspace(0.9, 0.8, 12), [0.4] * 3])  # each kind reversed
    names = [f"p{i}.jpg" for i in range(27)]
    groups = {n: "a" if i < 12 else "b" if i < 24 else "c" for i, n in enumerate(names)}
    result = group_agreement(kinds_only, reference, names, groups)
    assert [g["group"] for g in result["groups"]] == ["a", "b"] and 3 < MIN_GROUP  # c is too small to count
    assert result["mean"] == pytest.approx(-1.0) and result["photos"] == 24 and result["std"] == pytest.approx(0.0)
    right = group_agreement(reference * 2, reference, names, groups)
    assert right["mean"] == pytest.approx(1.0) and right["min"] == pytest.approx(1.0)
    assert group_agreement(reference, reference, names, {})["mean"] is None  # no group: nothing to average


def test_within_figures_are_added_from_an_agreement_file_and_reported(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    names = [f"{k}{i}.jpg" for k in "ab" for i in range(12)]
    reference = rng.random(24)
    earlier = {"machine": describe_machine(), "rows": [{"model": "m", "precision": "fp32", "file": "model.onnx", "input": [8, 8],
                                                     "spearman": 0.5, "pearson": 0.5, "pairwise": 0.6, "score_std": 0.1,
                                                     "scores": (reference + 0.1 * rng.random(24)).tolist()}],
               "settings": {"data": "x", "images": 24, "reference": "r", "reference_score_std": 0.2, "photos": names,
                            "reference_scores": reference.tolist()}}
    (tmp_path / "agreement.json").write_text(json.dumps(earlier))
    (tmp_path / "groups.json").write_text(json.dumps({"scene": {n: n[0] for n in names}}))
    result = CliRunner().invoke(app, ["agreement", "--from", str(tmp_path / "agreement.json"), "--groups",
                                      str(tmp_path / "groups.json"), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    written = json.loads((tmp_path / "out" / "agreement.json").read_text())
    within = written["rows"][0]["within"]["scene"]
    assert [g["group"] for g in within["groups"]] == ["a", "b"] and 0.5 < within["mean"] <= 1.0
    assert "inside groups of similar photos" in (tmp_path / "out" / "report.md").read_text()
    bare = CliRunner().invoke(app, ["agreement", "--from", str(tmp_path / "agreement.json"), "--out", str(tmp_path / "o2")])
    assert bare.exit_code != 0 and "--from needs --groups" in str(bare.exception)
    old = {**earlier, "settings": {k: v for k, v in earlier["settings"].items() if k != "reference_scores"}}
    with pytest.raises(MemgazeError, match="keeps no per-photo scores"):
        add_within(old, {"scene": {}})


def test_a_malformed_groups_file_is_a_one_line_error(tmp_path: Path) -> None:
    path = tmp_path / "groups.json"
    path.write_text(json.dumps({"scene": {"a.jpg": 3}}))
    with pytest.raises(MemgazeError, match="must map each grouping"):
        read_groupings(path)


def test_every_photo_of_the_built_in_model_has_a_package_and_a_scene_kind() -> None:
    sources = json.loads((builtin.DEFAULT.folder() / "data-sources.json").read_text())["files"]
    stems = [output_stem(f) for f in sources if not f["member"].endswith(".avi")]
    kinds = {scene_kind(f"{s}.jpg") for s in stems}
    assert len(stems) > 400 and sum(scene_kind(s) == OTHER for s in stems) < 30  # textures, paintings, digital art
    assert kinds <= {*KINDS, OTHER} and set(KINDS) <= kinds
    assert scene_kind("gcompris-qt-data__fishes-fish10_c7.jpg") == "underwater"  # a crop is its photo's kind
    assert scene_kind("kphotoalbum__donna_2.jpg") == "animals" and scene_kind("kphotoalbum__bar55.jpg") == "people"
    assert package_of("opencv-doc__vtest.avi") == "opencv-doc"
    groups = photo_groups(["scikit-image__text.jpg", "scikit-image__coffee.jpg"])
    assert groups["scene"] == {"scikit-image__coffee.jpg": "objects"}  # a photo of no kind is left out
