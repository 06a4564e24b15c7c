"""The real-photo fetcher: sources split by file, crops of the training side, provenance recorded."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from memgaze.errors import MemgazeError
from memgaze import builtin
from memgaze.builtin.photos import (CROP_SIDE, MORE_SOURCES, SOURCES, PhotoPlan, Source, build, held_out,
                                    plan_from_recipe, random_crops)

MATPLOTLIB = next(s for s in SOURCES if s.client == "installed")
ROOT = Path(__file__).resolve().parent.parent


def test_random_crops_cover_scales_and_keep_the_whole_photo() -> None:
    image = np.random.default_rng(0).integers(0, 256, (300, 500, 3), dtype=np.uint8)
    crops = random_crops(image, 6, np.random.default_rng(1))
    assert len(crops) == 6 and all(min(c.shape[:2]) == CROP_SIDE for c in crops)
    assert crops[0].shape[:2] == (CROP_SIDE, round(500 * CROP_SIDE / 300))  # the whole photo first
    assert len({c.shape for c in crops[1:]}) > 1  # random aspect and scale


def test_split_is_by_source_file_and_deterministic() -> None:
    members = [f"usr/share/x/{i}.jpg" for i in range(400)]
    sides = [held_out("pkg", m) for m in members]
    assert sides == [held_out("pkg", m) for m in members]
    assert 0.25 < sum(sides) / len(sides) < 0.45


@pytest.mark.parametrize("side_of_grace_hopper", ["train", "heldout"])
def test_build_from_an_installed_package(tmp_path: Path, side_of_grace_hopper: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("memgaze.builtin.photos.held_out", lambda package, member, share: side_of_grace_hopper == "heldout")
    out = tmp_path / "photos"
    counts = build(out, PhotoPlan((MATPLOTLIB,), crops=3, held_out_packages=("matplotlib",), training={"epochs_student": 1}))
    record = json.loads((out / "sources.json").read_text())["files"]
    assert record == [{"package": "matplotlib", "client": "installed", "member": "mpl-data/sample_data/grace_hopper.jpg",
                       "name": "matplotlib__grace_hopper", "licence": MATPLOTLIB.licence, "side": side_of_grace_hopper}]
    assert json.loads((out / "train-config.json").read_text()) == {"epochs_student": 1}
    # the leave-packages-out split: the package is held out whole, whichever side of the file split the photo is on
    assert [p.name for p in (out / "packages-out" / "heldout" / "images").iterdir()] == ["matplotlib__grace_hopper.jpg"]
    assert [p.name for p in (out / "packages-out" / "train").iterdir()] == ["groups.json"]
    if side_of_grace_hopper == "train":
        assert counts["train_crops"] == 3 and not (out / "heldout").exists()
        assert cv2.imread(str(out / "train" / "matplotlib__grace_hopper_c2.jpg")) is not None
        groups = json.loads((out / "train" / "groups.json").read_text())
        assert groups["scene"] == {f"matplotlib__grace_hopper_c{k}.jpg": "people" for k in range(3)}
    else:
        assert counts["heldout_photos"] == 1 and not (out / "train").exists()
        assert json.loads((out / "heldout" / "groups.json").read_text())["package"] == {"matplotlib__grace_hopper.jpg": "matplotlib"}


@pytest.mark.parametrize("model", builtin.MODELS.values(), ids=list(builtin.MODELS))
def test_each_recipe_names_every_setting_of_the_photos(model: builtin.BuiltinModel, tmp_path: Path) -> None:
    plan = plan_from_recipe(model.recipe_path())
    assert plan.crops >= 1 and 0 < plan.held_out_share < 1
    student = {"memgaze-lite0-resmem": ("efficientnet_lite0", 224), "memgaze-lite2-resmem": ("efficientnet_lite2", 256)}
    assert (plan.training["student_backbone"], plan.training["image_size"]) == student[model.name]
    order = [s.package for s in (*SOURCES, *MORE_SOURCES)]
    assert [s.package for s in plan.sources] == sorted((s.package for s in plan.sources), key=order.index)  # crops drawn alike
    assert set(plan.held_out_packages) <= {s.package.split("==")[0] for s in plan.sources}
    recipe = json.loads(model.recipe_path().read_text())
    default = json.loads(builtin.DEFAULT.recipe_path().read_text())
    extra = set(recipe["photos"].get("train_only", []))  # packages that only add training photos
    held_out_side = {**recipe["photos"], "train_only": [],
                     "packages": [p for p in recipe["photos"]["packages"] if p.split("==")[0] not in extra]}
    assert held_out_side == default["photos"] and recipe["seeds"] == default["seeds"]  # the same held-out photos
    dry_run = subprocess.run(["make", "-n", "-s", "-C", str(ROOT), "builtin", f"BUILTIN_MODEL={model.name}"],
                             capture_output=True, text=True, timeout=60)
    assert dry_run.returncode == 0 and f"--recipe memgaze/builtin/{model.recipe} " in dry_run.stdout  # make builtin's recipe
    recipe["photos"]["held_out_packages"] = ["no-such-package"]
    (tmp_path / "r.json").write_text(json.dumps(recipe))
    with pytest.raises(MemgazeError, match="no-such-package is not among its packages"):
        plan_from_recipe(tmp_path / "r.json")
    (tmp_path / "r.json").write_text(json.dumps({"photos": {}}))
    with pytest.raises(MemgazeError, match="is not usable"):
        plan_from_recipe(tmp_path / "r.json")


def test_a_package_without_the_listed_files_is_a_clear_error(tmp_path: Path) -> None:
    missing = Source("matplotlib", "installed", ("mpl-data/no_such_photo.jpg",), "n/a")
    with pytest.raises(MemgazeError, match="holds none of the expected files"):
        build(tmp_path / "photos", PhotoPlan((missing,), crops=2))
