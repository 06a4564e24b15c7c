"""--stage personalize adds a user to a trained student by fitting only that user's embedding."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from train_fixtures import TINY, assert_one_line_error, tiny_data, train


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    data = tiny_data(tmp_path_factory.mktemp("data") / "demo", count=40, users=3)
    out = tmp_path_factory.mktemp("run")
    # train on the first two users only; the third is the "new" one
    gaze = data / "gaze"
    held = tmp_path_factory.mktemp("held") / "newbie"
    shutil.move(str(gaze / sorted(p.name for p in gaze.iterdir() if p.is_dir())[-1]), held)
    (gaze / "fixations.csv").unlink(missing_ok=True)
    proc = train("--data", str(data), "--out", str(out), "--epochs-teacher", "1", "--epochs-student", "1", *TINY)
    assert proc.returncode == 0, proc.stderr
    return data, out, held


def test_personalize_appends_user_and_only_changes_its_embedding(trained: tuple[Path, Path, Path]) -> None:
    data, out, held = trained
    before = load_file(out / "student.safetensors")
    users_before = json.loads((out / "student.json").read_text())["users"]
    config = out / "fast.json"
    config.write_text('{"personalize_steps": 30, "personalize": {"max_held_out": 3}}')
    proc = train("--data", str(data), "--out", str(out), "--stage", "personalize", "--user", "newbie",
                 "--gaze", str(held), "--config", str(config), *TINY)
    assert proc.returncode == 0, proc.stderr
    config = json.loads((out / "student.json").read_text())
    assert config["users"] == [*users_before, "newbie"]
    result = config["metrics"]["personalize"]["newbie"]
    assert result["heatmaps_fit"] >= 8 and -1 <= result["cc_personalized"] <= 1
    assert len(list(held.glob("*.png"))) // 5 > 3 and result["heatmaps_held_out"] == 3  # a fifth, capped
    after = load_file(out / "student.safetensors")
    changed = [k for k in before if before[k].shape == after[k].shape and not torch.equal(before[k], after[k])]
    grown = [k for k in before if before[k].shape != after[k].shape]
    assert changed == [] and len(grown) >= 1, (changed, grown)
    for key in grown:  # old users' rows untouched, one new row
        assert after[key].shape[0] == before[key].shape[0] + 1
        assert torch.equal(after[key][: before[key].shape[0]], before[key])
    assert json.loads((out / "student.prev.json").read_text())["users"] == users_before
    assert json.loads((out / "metrics.json").read_text())["personalize"]["newbie"] == result

    again = train("--data", str(data), "--out", str(out), "--stage", "personalize", "--user", "newbie",
                  "--gaze", str(held), *TINY)
    assert_one_line_error(again, "already")


def test_too_few_heatmaps(trained: tuple[Path, Path, Path], tmp_path: Path) -> None:
    data, out, held = trained
    few = tmp_path / "few"
    few.mkdir()
    for png in sorted(held.glob("*.png"))[:3]:
        shutil.copy(png, few / png.name)
    proc = train("--data", str(data), "--out", str(out), "--stage", "personalize", "--user", "x", "--gaze", str(few), *TINY)
    assert_one_line_error(proc, "need at least")
