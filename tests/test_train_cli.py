"""memgaze-train end to end on tiny synthetic data, and its one-line errors (through the console script once,
in this process for the rest: the same entry point without a torch import each)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from memgaze.train.distributed import DistContext

from train_fixtures import TINY, assert_one_line_error, tiny_data, train, train_in_process


MISSING = "no_such_image.jpg"  # one bad train-split row: every stage reads that split


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tiny_data(tmp_path_factory.mktemp("data") / "demo")
    with open(root / "splits" / "train_1.txt", "a") as split:
        split.write(f"{MISSING} 0.5\n")
    return root


@pytest.fixture(scope="module")
def run_stderr(data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """Both stages, with --resume into a fresh folder: nothing to resume, so it says so and trains from scratch."""
    out = tmp_path_factory.mktemp("run")
    proc = train("--data", str(data), "--out", str(out), "--epochs-teacher", "1", "--epochs-student", "1", *TINY, "--resume")
    assert proc.returncode == 0, proc.stderr
    assert "SYNTHETIC" in proc.stderr
    return out, proc.stderr


@pytest.fixture(scope="module")
def run(run_stderr: tuple[Path, str]) -> Path:
    return run_stderr[0]


def test_a_bad_row_is_warned_about_once_per_run(run_stderr: tuple[Path, str]) -> None:
    """Teacher and student stages both read the train split; the row is reported once, and counted once."""
    stderr = run_stderr[1]
    assert sum(MISSING in line for line in stderr.splitlines() if line.startswith("warning:")) == 1, stderr
    assert "data: skipped 1 (1 missing image)" in stderr


def test_resume_with_nothing_to_resume_says_it_trains_from_scratch(run_stderr: tuple[Path, str]) -> None:
    out, stderr = run_stderr
    warned = [line for line in stderr.splitlines() if "nothing" in line or "no training state" in line]
    assert warned == [f"warning: --resume: {out} holds no training state to resume; training from scratch"], stderr
    assert "resumed after" not in stderr


def test_the_log_says_how_the_run_computes(run_stderr: tuple[Path, str]) -> None:
    lines = [line for line in run_stderr[1].splitlines() if line.startswith("compute:")]
    assert lines == ["compute: cpu, fp32, channels_last; data loading: 0 worker process(es) per training process "
                     f"({DistContext(device=torch.device('cpu')).cpus} CPU(s) for each of the 1 on this machine)"], run_stderr[1]


@pytest.mark.parametrize(
    ("option", "needle"),
    [
        (["--student-backbone", "mobilenet_v3_smal"], "unknown --student-backbone 'mobilenet_v3_smal': choose one of mobilenet_v3_small, efficientnet_lite0"),
        (["--teacher-arch", "resnet51"], "unknown --teacher-arch 'resnet51': choose one of resnet50, resnet152"),
        (["--teacher-model", "resmen"], "unknown --teacher-model 'resmen': give an .onnx file or one of: resmem"),
    ],
)
def test_misspelled_names_are_refused_before_any_data_is_read(option: list[str], needle: str, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "o"
    proc = train_in_process(monkeypatch, capsys, "--data", "demo", "--out", str(out), *option, *TINY)
    assert_one_line_error(proc, needle)
    assert not (out / "demo-data").exists()  # refused before the demo data would have been generated


def test_one_gpu_for_every_process_under_torchrun_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    for name, value in {"WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "2"}.items():
        monkeypatch.setenv(name, value)  # as torchrun sets them; refused before any process group is joined
    proc = train_in_process(monkeypatch, capsys, "--data", "demo", "--out", str(tmp_path / "o"), *TINY, "--device", "cuda:1")
    assert_one_line_error(proc, "--device cuda:1 under torchrun would put all 2 processes on one GPU: give --device cuda")


def test_make_demo_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    proc = train_in_process(monkeypatch, capsys, "--make-demo-data", str(tmp_path / "d"), "--demo-count", "12", "--image-size", "32",
                            "--demo-users", "2", "--splits", "5")
    assert proc.returncode == 0, proc.stderr
    for split in ("train", "val", "test"):
        assert all((tmp_path / "d" / "splits" / f"{split}_{k}.txt").is_file() for k in range(1, 6))
    assert len(list((tmp_path / "d" / "images").iterdir())) == 12
    assert "5 splits of train 7/val 2/test 3" in proc.stderr


def test_fold_selects_the_split_files(data: Path, tmp_path: Path) -> None:
    proc = train("--data", str(data), "--out", str(tmp_path / "o"), "--fold", "3", *TINY)
    assert_one_line_error(proc, "train_3.txt does not exist")
    assert_one_line_error(train("--data", str(data), "--out", str(tmp_path / "o"), "--fold", "0", *TINY), "fold must be at least 1")


def test_all_stages_write_outputs(run: Path) -> None:
    for name in ("teacher.safetensors", "teacher.json", "student.safetensors", "student.json", "curves.png", "log.csv"):
        assert (run / name).is_file(), name
    metrics = json.loads((run / "metrics.json").read_text())
    for key in ("spearman", "pearson", "mse"):
        assert key in metrics["teacher"]["test"]
    for key in ("spearman", "pearson", "mse", "cc_own_user", "cc_other_user", "cc_generic", "nss_own_user"):
        assert key in metrics["student"]["test"], key
    assert metrics["teacher"]["params"] > metrics["student"]["params"] > 0
    assert metrics["macs_ratio"] > 5  # the student costs a fraction of the teacher's multiply-adds
    assert metrics["data"]["synthetic"] is True and metrics["data"]["test_images"] > 0
    student = json.loads((run / "student.json").read_text())
    assert student["users"][0] == "generic" and len(student["users"]) == 3
    assert all(t.isfinite().all() for t in load_file(run / "student.safetensors").values())
    log = (run / "log.csv").read_text().splitlines()
    assert log[0].startswith("stage,epoch") and {line.split(",")[0] for line in log[1:]} == {"teacher", "student"}
    assert (run / "state" / "teacher.pt").is_file() and (run / "state" / "student.pt").is_file()


def test_bad_data_path(tmp_path: Path) -> None:
    """Through the installed console script, as a user runs it: one line, exit 2, no traceback."""
    assert_one_line_error(train("--data", str(tmp_path / "nope"), "--out", str(tmp_path / "o"), *TINY), "nope")


def test_no_usable_images(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "empty"
    (root / "splits").mkdir(parents=True)
    (root / "images").mkdir()
    for split in ("train", "val", "test"):
        (root / "splits" / f"{split}_1.txt").write_text("missing.jpg 0.5\n")
    proc = train_in_process(monkeypatch, capsys, "--data", str(root), "--out", str(tmp_path / "o"), *TINY)
    assert_one_line_error(proc, "no usable images")


def test_student_needs_teacher(data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    proc = train_in_process(monkeypatch, capsys, "--data", str(data), "--out", str(tmp_path / "o"), "--stage", "student", *TINY)
    assert_one_line_error(proc, "teacher")


def test_unwritable_out(data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert_one_line_error(train_in_process(monkeypatch, capsys, "--data", str(data), "--out", str(blocker / "sub"), *TINY), "cannot write")


def test_bad_config(data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "c.json"
    config.write_text('{"learning_rate": 1}')
    proc = train_in_process(monkeypatch, capsys, "--data", str(data), "--out", str(tmp_path / "o"), "--config", str(config), *TINY)
    assert_one_line_error(proc, "learning_rate")


def test_help_shows_the_config_defaults() -> None:
    """Every bracketed default in `memgaze-train --help`, as rendered, is what TrainConfig (and build_config) gives;
    the options that describe a rule instead are those whose config default is None (resolved at run time)."""
    import re

    from typer.testing import CliRunner

    from memgaze.train.cli import app
    from memgaze.train.config import TrainConfig, build_config

    result = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    shown = {match[1]: match[2] for line in result.output.splitlines()
             if (match := re.match(r"│ (--[\w-]+)\b.*\[([^\]]+)\]", line))}
    defaults, real, demo = TrainConfig(), build_config(None, {"data": "/lamem"}), build_config(None, {"data": "demo"})
    values = {
        "--out": defaults.out, "--stage": defaults.stage, "--fold": defaults.fold, "--batch-size": defaults.batch_size,
        "--device": defaults.device, "--teacher-arch": defaults.teacher_arch, "--student-backbone": defaults.student_backbone,
        "--seed": defaults.seed, "--video-every": defaults.label_free.video_every,
        "--epochs-teacher": f"{real.epochs_teacher}; {demo.epochs_teacher} for --data demo",
        "--epochs-student": f"{real.epochs_student}; {demo.epochs_student} for --data demo",
        "--image-size": f"{real.image_size}; {demo.image_size} for --data demo",
        "--demo-count": f"default: {defaults.demo.count}", "--demo-users": f"default: {defaults.demo.users}",
        "--splits": "default: 1",  # --make-demo-data's own option, not a training setting
    }
    rules = {"--workers": defaults.workers, "--cache": defaults.cache, "--teacher-size": defaults.label_free.teacher_size,
             "--teacher-mean": defaults.label_free.teacher_mean, "--teacher-std": defaults.label_free.teacher_std,
             "--teacher-online": defaults.label_free.teacher_online}
    assert set(shown) == set(values) | set(rules)
    assert {option: shown[option] for option in values} == {option: str(value) for option, value in values.items()}
    assert all(value is None for value in rules.values())


def test_help_needs_no_torch() -> None:
    """The defaults come from memgaze.train.config, which imports no torch: `memgaze-train --help` stays quick."""
    import subprocess
    import sys

    probe = "import sys, memgaze.train.cli; print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'torchvision'}))"
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == "[]", proc.stderr
