"""memgaze-train's configuration: sections, memgaze 0.1's flat keys, CLI overrides, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from memgaze.errors import MemgazeError
from memgaze.train.config import FLAT_KEYS, build_config, read_config_file
from memgaze.train.losses import LossWeights


def write(tmp_path: Path, values: object) -> Path:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(values))
    return path


def test_defaults_and_demo_sizes() -> None:
    cfg = build_config(None, {})
    assert cfg.image_size == cfg.demo.image_size == 128 and cfg.epochs_teacher == cfg.epochs_student == 3
    assert cfg.loss == LossWeights() and cfg.optim.monitor_teacher == "spearman"
    real = build_config(None, {"data": "/somewhere"})
    assert real.image_size == 224 and real.epochs_teacher == 10


def test_sections_go_to_their_code(tmp_path: Path) -> None:
    file = write(tmp_path, {"seed": 3, "optim": {"lr_student": 0.01, "patience": 2, "ema_decay": 0.99}, "loss": {"student_gaze": 4},
                            "personalize": {"steps": 7}, "demo": {"count": 50}, "label_free": {"video_every": 5},
                            "augment": {"min_scale": 1}})
    cfg = build_config(read_config_file(file), {"label_free.teacher_online": True, "seed": None})
    assert cfg.seed == 3 and cfg.optim.lr_student == 0.01 and cfg.optim.patience == 2 and cfg.optim.ema_decay == 0.99
    assert isinstance(cfg.loss, LossWeights) and cfg.loss.student_gaze == 4.0 and isinstance(cfg.loss.student_gaze, float)
    assert cfg.personalize.steps == 7 and cfg.demo.count == 50
    assert cfg.label_free.video_every == 5 and cfg.label_free.teacher_online is True
    assert cfg.augment.min_scale == 1.0 and cfg.augment.flip == 0.5  # the rest of a section keeps its defaults
    assert build_config(None, {"optim.lr_student": 0.5}).optim.lr_student == 0.5  # dotted CLI override


def test_flat_files_of_memgaze_0_1_keep_working(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = {"lr_teacher": 0.002, "teacher_w_score": 5.0, "loss_cc": 0.5, "personalize_steps": 30, "lr_personalize": 0.1,
           "demo_count": 60, "demo_image_size": 96, "teacher_model": "resmem", "video_min_change": 1.0, "monitor_teacher": "pearson"}
    cfg = build_config(read_config_file(write(tmp_path, old)), {})
    assert cfg.optim.lr_teacher == 0.002 and cfg.optim.monitor_teacher == "pearson"
    assert cfg.loss.teacher_score == 5.0 and cfg.loss.cc == 0.5
    assert cfg.personalize.steps == 30 and cfg.personalize.lr == 0.1
    assert cfg.demo.count == 60 and cfg.image_size == 96
    assert cfg.label_free.teacher_model == "resmem" and cfg.label_free.video_min_change == 1.0
    note = [line for line in capsys.readouterr().err.splitlines() if line.startswith("note:")]
    assert len(note) == 1 and "teacher_w_score → loss.teacher_score" in note[0]
    assert all(section in ("optim", "loss", "personalize", "demo", "label_free") for section, _ in FLAT_KEYS.values())


@pytest.mark.parametrize(
    ("values", "needle"),
    [
        ({"lr_techer": 1.0}, "unknown config key 'lr_techer'"),
        ({"optim": {"lr": 1.0}}, "unknown config key optim.lr"),
        ({"optim": {"patience": 1.5}}, "optim.patience' must be an integer"),
        ({"loss": {"cc": "high"}}, "loss.cc' must be a number"),
        ({"cache": "yes"}, "'cache' must be true or false"),
        ({"optim": {"monitor_teacher": "cc"}}, "optim.monitor_teacher 'cc'"),
        ({"optim": {"monitor_student": "spearman+nss"}}, "optim.monitor_student"),
        ({"optim": {"warmup_frac": 1.0}}, "warmup_frac"),
        ({"optim": {"ema_decay": 1.0}}, "optim.ema_decay must be at least 0 and below 1"),
        ({"loss": {"student_score_map_grad": -0.5}}, "loss.student_score_map_grad must be between 0 and 1"),
        ({"augment": {"min_scale": 0}}, "augment.min_scale must be above 0"),
        ({"augment": {"flip": 1.5}}, "augment.flip must be between 0 and 1"),
        ({"augment": {"jitter": -0.1}}, "augment.jitter must not be negative"),
        ({"stage": "student", "label_free": {"teacher_model": "x.onnx"}, "image_size": 0}, "image_size"),
    ],
)
def test_bad_settings_are_one_line_errors(tmp_path: Path, values: dict[str, object], needle: str) -> None:
    with pytest.raises(MemgazeError, match=None) as error:
        build_config(read_config_file(write(tmp_path, values)), {})
    assert needle in str(error.value) and "\n" not in str(error.value)


def test_monitor_teacher_is_honoured() -> None:
    from memgaze.train.config import TEACHER_MONITORS
    from memgaze.train.stages.context import monitor

    metrics = {"val_spearman": 0.5, "val_pearson": float("nan"), "val_cc": 0.25}
    assert monitor("spearman", TEACHER_MONITORS, "optim.monitor_teacher")(metrics) == 0.5
    assert monitor("spearman+pearson", TEACHER_MONITORS, "optim.monitor_teacher")(metrics) == -0.5  # NaN counts as -1
