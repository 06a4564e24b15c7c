"""Checkpoints: safetensors + JSON round trip, one-line errors, resumable training state."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from memgaze.errors import MemgazeError
from memgaze.train.checkpoint import (
    load_checkpoint,
    load_training_state,
    save_checkpoint,
    save_training_state,
)
from memgaze.train.models import build_model, default_config

SIZE = 32


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, torch.nn.Module, dict]:
    torch.manual_seed(0)
    config = default_config("student", SIZE, ["ann", "bob"], backbone_weights="none")
    model = build_model(config)
    with torch.no_grad():  # non-default BN statistics must survive too
        model(torch.randn(4, 3, SIZE, SIZE), torch.tensor([0, 1, 2, 1]))
    model.eval()
    config["metrics"] = {"test": {"spearman": 0.5}}
    path = save_checkpoint(tmp_path_factory.mktemp("ckpt") / "student.safetensors", model, config)
    return path, model, config


def test_round_trip_gives_equal_outputs(saved: tuple[Path, torch.nn.Module, dict]) -> None:
    path, model, config = saved
    assert path.is_file() and path.with_suffix(".json").is_file()
    assert not list(path.parent.glob(".*.tmp"))  # no temporary files left behind
    for given in (path.with_suffix(".json"), path.with_suffix("")):
        assert load_checkpoint(given)[1]["users"] == ["generic", "ann", "bob"]
    loaded, loaded_config = load_checkpoint(path, expect_kind="student")
    assert loaded_config == json.loads(json.dumps(config)) and not loaded.training
    x, user = torch.randn(2, 3, SIZE, SIZE), torch.tensor([2, 0])
    with torch.no_grad():
        for got, want in zip(loaded(x, user), model(x, user)):
            torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_teacher_round_trip_and_kind_mismatch(tmp_path: Path) -> None:
    config = default_config("teacher", SIZE, backbone_weights="none")
    model = build_model(config).eval()
    save_checkpoint(tmp_path / "teacher", model, config)
    loaded, _ = load_checkpoint(tmp_path / "teacher.safetensors", expect_kind="teacher")
    torch.testing.assert_close(loaded.state_dict()["layer4.2.conv3.weight"], model.state_dict()["layer4.2.conv3.weight"])
    with pytest.raises(MemgazeError, match="is a teacher checkpoint; expected a student"):
        load_checkpoint(tmp_path / "teacher.safetensors", expect_kind="student")


def test_added_user_round_trips(tmp_path: Path) -> None:
    config = default_config("student", SIZE, ["ann"], backbone_weights="none")
    model = build_model(config)
    model.add_user()
    with pytest.raises(MemgazeError, match="users"):
        save_checkpoint(tmp_path / "s", model, config)  # config not updated: refused
    config["users"].append("cy")
    save_checkpoint(tmp_path / "s", model, config)
    loaded, loaded_config = load_checkpoint(tmp_path / "s.json")
    assert loaded.num_users == 3 and loaded_config["users"] == ["generic", "ann", "cy"]


def one_line(exc: pytest.ExceptionInfo[MemgazeError]) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


def test_a_checkpoint_under_its_former_architecture_name_loads(saved: tuple[Path, torch.nn.Module, dict],
                                                                 tmp_path: Path) -> None:
    path, model, config = saved
    former = dict(config, architecture=dict(config["architecture"], name="mobilenetv3s_attention_film"))
    (tmp_path / "former.json").write_text(json.dumps(former))
    (tmp_path / "former.safetensors").write_bytes(path.read_bytes())
    loaded, _ = load_checkpoint(tmp_path / "former.safetensors", expect_kind="student")
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))
    renamed = dict(config, architecture=dict(config["architecture"], name="resnet50_attention_fpn"))  # the teacher's
    (tmp_path / "renamed.json").write_text(json.dumps(renamed))
    (tmp_path / "renamed.safetensors").write_bytes(path.read_bytes())
    with pytest.raises(MemgazeError, match="unknown student architecture 'resnet50_attention_fpn'"):
        load_checkpoint(tmp_path / "renamed.safetensors")


def test_checkpoint_errors(saved: tuple[Path, torch.nn.Module, dict], tmp_path: Path) -> None:
    path, _, config = saved
    with pytest.raises(MemgazeError, match="does not exist") as exc:
        load_checkpoint(tmp_path / "nope.safetensors")
    one_line(exc)
    lone = tmp_path / "lone.safetensors"
    lone.write_bytes(path.read_bytes())
    with pytest.raises(MemgazeError, match="not a memgaze checkpoint") as exc:
        load_checkpoint(lone)
    one_line(exc)
    (tmp_path / "foreign.json").write_text(json.dumps({"hello": 1}))
    (tmp_path / "foreign.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(MemgazeError, match="not a memgaze checkpoint config"):
        load_checkpoint(tmp_path / "foreign.safetensors")
    (tmp_path / "broken.json").write_text(json.dumps(config))
    (tmp_path / "broken.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(MemgazeError, match="not a readable safetensors") as exc:
        load_checkpoint(tmp_path / "broken.safetensors")
    one_line(exc)
    (tmp_path / "weightless.json").write_text(json.dumps(config))
    with pytest.raises(MemgazeError, match="no weights file"):
        load_checkpoint(tmp_path / "weightless.json")
    other = dict(config, users=["generic"])  # embedding rows no longer match
    (tmp_path / "mismatch.json").write_text(json.dumps(other))
    (tmp_path / "mismatch.safetensors").write_bytes(path.read_bytes())
    with pytest.raises(MemgazeError, match="do not match") as exc:
        load_checkpoint(tmp_path / "mismatch.safetensors")
    one_line(exc)


def test_training_state_round_trip(tmp_path: Path) -> None:
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.1, total_steps=10)
    model(torch.randn(4, 3)).sum().backward()
    optimizer.step()
    scheduler.step()
    path = tmp_path / "state.pt"
    save_training_state(path, optimizer=optimizer, scheduler=scheduler, model=model, epoch=3, best=0.7, extra={"stage": "x"})
    expected = (torch.rand(3), np.random.rand(3), [random.random() for _ in range(3)])
    model2 = torch.nn.Linear(3, 2)
    optimizer2 = torch.optim.AdamW(model2.parameters(), lr=0.1)
    scheduler2 = torch.optim.lr_scheduler.OneCycleLR(optimizer2, max_lr=0.1, total_steps=10)
    info = load_training_state(path, optimizer=optimizer2, scheduler=scheduler2, model=model2)
    assert info == {"epoch": 3, "best": 0.7, "extra": {"stage": "x"}}
    torch.testing.assert_close(model2.weight, model.weight)
    assert optimizer2.state_dict()["state"][0]["step"] == optimizer.state_dict()["state"][0]["step"]
    assert scheduler2.state_dict()["last_epoch"] == 1
    torch.testing.assert_close(torch.rand(3), expected[0])  # RNG streams continue where they were saved
    np.testing.assert_array_equal(np.random.rand(3), expected[1])
    assert [random.random() for _ in range(3)] == expected[2]
    (tmp_path / "bad.pt").write_bytes(b"garbage")
    with pytest.raises(MemgazeError, match="cannot resume"):
        load_training_state(tmp_path / "bad.pt")
    with pytest.raises(MemgazeError, match="does not exist"):
        load_training_state(tmp_path / "none.pt")
    with pytest.raises(MemgazeError, match="does not match"):
        load_training_state(path, model=torch.nn.Linear(5, 2))
