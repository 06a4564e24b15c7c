"""Label-free distillation (``memgaze-train --teacher-model``): external teachers, frame folders,
the teacher-output cache, the one-line errors, and the acceptance run against an ONNX teacher
the project exports itself."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np
import pytest
import torch

from memgaze.console import WarningCounter
from memgaze.errors import MemgazeError
from memgaze.train.label_free.external_teacher import ExternalTeacher, TeacherOutput, open_teacher, parse_channels
from memgaze.train.label_free.unlabelled_frames import collect_frames, prepare

from train_fixtures import TINY, train

TEACHER = Path(__file__).parent / "data" / "demo_teacher.int8.onnx"  # `make test-teacher` regenerates it
TEACHER_SIZE = 128  # its input side
FRAMES = 320  # unlabelled demo frames (64 px, seed 0: scenes the teacher never saw)
SIZE = 64  # the distilled student's input side
EPOCHS = 12  # about 2 min on 2 CPU cores; 8 epochs left seed 0 at 0.79 on an AVX-512 CPU (0.88 on an AVX2 one)
UNSEEN = 200  # fresh demo scenes (seed 7) on which the acceptance is measured
# The label-free machinery is what this run accepts, on 64-px synthetic scenes: MobileNetV3-Small learns them
# from scratch in 12 epochs; the default Lite0 (ImageNet trunk, 0.1x trunk rate) reached 0.73 here, and is
# accepted on real photos instead (the built-in model: held-out rho against ResMem in docs/builtin-model.md).
STUDENT = "mobilenet_v3_small"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Demo scenes without labels: the splits are deleted, the gaze of one user is kept."""
    from memgaze.train.data.demo import make_demo_dataset

    root = tmp_path_factory.mktemp("lf") / "demo"
    make_demo_dataset(root, FRAMES, SIZE, 1, 0)
    shutil.rmtree(root / "splits")
    return root


@pytest.fixture(scope="module")
def teacher_onnx() -> Path:
    return TEACHER


# -- the acceptance run (marked slow: about 2 minutes of training; `pytest -m "not slow"` skips it) ------------


@pytest.fixture(scope="module")
def distilled(demo: Path, train_seed: int, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("distilled")
    proc = train(
        "--data", str(demo), "--out", str(out), "--teacher-model", str(TEACHER), "--seed", str(train_seed), "--student-backbone", STUDENT,
        "--epochs-student", str(EPOCHS), "--image-size", str(SIZE), "--batch-size", "16", "--device", "cpu", "--workers", "0", "--no-cache",
    )
    assert proc.returncode == 0, proc.stderr
    assert "only the student stage runs" in proc.stderr and "Spearman" in proc.stderr
    return out


@pytest.mark.slow
def test_report_says_what_the_student_was_trained_on(distilled: Path) -> None:
    report = json.loads((distilled / "metrics.json").read_text())["distillation"]
    assert report["teacher_model"] == TEACHER.name and "memgaze" in report["teacher_version"]
    assert report["frames"] == FRAMES and report["held_out"] == FRAMES // 10 and report["teacher_outputs"] == "computed"
    assert report["teacher_map"] is True and report["teacher_online"] is True and report["scores_rescaled"] is False


@pytest.mark.slow
def test_student_agrees_with_onnx_teacher(distilled: Path, tmp_path: Path) -> None:
    """Issue 7's acceptance: Spearman ≥ 0.8 with the teacher on held-out images, here 200 demo
    scenes the student never saw (the run's own held-out set, 10% of 320 frames, is too small to
    tell 0.8 from 0.7), both models run as ONNX through the same preprocessing."""
    from scipy.stats import spearmanr

    from memgaze.export.onnx_export import export_onnx
    from memgaze.train.checkpoint import load_checkpoint
    from memgaze.train.data.demo import make_demo_dataset

    model, config = load_checkpoint(distilled / "student.safetensors", expect_kind="student")
    export_onnx(model, config, tmp_path / "student.onnx")
    student = open_teacher(str(tmp_path / "student.onnx"))
    make_demo_dataset(tmp_path / "unseen", UNSEEN, SIZE, 1, 7)
    frames = [cv2.imread(str(p)) for p in sorted((tmp_path / "unseen" / "images").iterdir())]
    rho = spearmanr(student.predict(frames).scores, open_teacher(str(TEACHER)).predict(frames).scores)[0]
    report = json.loads((distilled / "metrics.json").read_text())["distillation"]
    print(f"seed-check: rho_unseen={rho:.4f} rho_held_out={report['spearman_vs_teacher']:.4f}")
    assert rho >= 0.8 and report["spearman_vs_teacher"] >= 0.6, (rho, report)


@pytest.mark.slow
def test_distilled_student_keeps_users_and_skips_the_resnet_teacher(distilled: Path) -> None:
    student = json.loads((distilled / "student.json").read_text())
    assert student["users"] == ["generic", "user_faces"]
    assert student["training"]["teacher_model"] == TEACHER.name and student["training"]["teacher_online"] is True
    assert not (distilled / "teacher.safetensors").exists()
    metrics = json.loads((distilled / "metrics.json").read_text())
    assert "teacher" not in metrics and metrics["distillation"]["gaze_users"] == ["user_faces"]
    print(f"seed-check: cc_own_user={metrics['student']['test']['cc_own_user']:.4f}")
    assert metrics["student"]["test"]["cc_own_user"] > 0.5  # the user's gaze was imitated


# -- teachers ---------------------------------------------------------------------------------------


def _tiny_onnx(path: Path, output_shape: list[object], reduce: bool = True) -> Path:
    """A float NCHW model with a dynamic input size: score = mean of the normalized input (or the input itself)."""
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, "h", "w"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, output_shape)
    node = (
        helper.make_node("ReduceMean", ["x"], ["y"], axes=[1, 2, 3], keepdims=0)
        if reduce else helper.make_node("Identity", ["x"], ["y"])
    )
    model = helper.make_model(helper.make_graph([node], "tiny", [x], [y]), opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_float_nchw_teacher_uses_size_and_normalization_flags(tmp_path: Path) -> None:
    teacher = open_teacher(str(_tiny_onnx(tmp_path / "mean.onnx", ["n"])), size=32, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    assert (teacher.height, teacher.width, teacher.has_map) == (32, 32, False)
    frames = [np.full((48, 40, 3), value, np.uint8) for value in (0, 128, 255)]
    scores = teacher.predict(frames).scores
    assert np.allclose(scores, [(v / 255 - 0.5) / 0.25 for v in (0, 128, 255)], atol=1e-5)
    with pytest.raises(MemgazeError, match="--teacher-size"):
        open_teacher(str(tmp_path / "mean.onnx"))


def test_bundle_graph_teacher_gives_score_and_map(demo: Path) -> None:
    teacher = open_teacher(str(TEACHER))
    assert (teacher.height, teacher.width, teacher.nhwc) == (TEACHER_SIZE, TEACHER_SIZE, True)
    frames = [cv2.imread(str(p)) for p in sorted((demo / "images").iterdir())[:5]]
    out = teacher.predict(frames)
    assert teacher.has_map and out.maps is not None and out.maps.shape == (5, TEACHER_SIZE // 8, TEACHER_SIZE // 8)
    assert np.allclose(out.maps.sum(axis=(1, 2)), 1, atol=1e-4) and out.scores.std() > 0.01


# -- what the student imitates per batch ----------------------------------------------------------


def _batch(frames: Sequence[np.ndarray], users: Sequence[int]) -> dict[str, torch.Tensor]:
    """A training batch of BGR frames as the data loader gives it: normalized RGB, user, index."""
    from memgaze.train.data.dataset import normalize_image

    rgb = [torch.from_numpy(np.ascontiguousarray(f[..., ::-1])).permute(2, 0, 1) for f in frames]
    return {
        "image": torch.stack([normalize_image(x) for x in rgb]),
        "user": torch.tensor(users),
        "index": torch.arange(len(frames)),
    }


def test_online_targets_are_of_the_crop_the_student_sees(demo: Path) -> None:
    from memgaze.train.kd_targets import ExternalTargets

    teacher = open_teacher(str(TEACHER))
    frames = [cv2.imread(str(p)) for p in sorted((demo / "images").iterdir())[:4]]
    flipped = [np.ascontiguousarray(f[:, ::-1]) for f in frames]  # an augmented view of each frame
    cached = torch.from_numpy(teacher.predict(frames).scores).float()
    batch = _batch(flipped, [0, 1, 0, 2])
    online_scores, online_maps = ExternalTargets(teacher, cached, online=True)(batch, (8, 8))
    assert torch.allclose(online_scores, torch.from_numpy(teacher.predict(flipped).scores).float(), atol=1e-3)
    assert not torch.allclose(online_scores, cached, atol=1e-3)
    assert online_maps.shape == (4, 1, 8, 8) and not online_maps[[1, 3]].any()  # for generic items only, log-probabilities
    assert torch.allclose(online_maps[[0, 2]].exp().sum(dim=(2, 3)), torch.ones(2, 1), atol=1e-3)
    from memgaze.train.label_free.external_teacher import map_log_targets

    expected = map_log_targets(teacher.predict(flipped).maps[[0, 2]], (8, 8), torch.device("cpu"))  # of the crop seen
    assert torch.allclose(online_maps[[0, 2]], expected, atol=1e-4)
    cached_targets = ExternalTargets(teacher, cached, online=False)
    cached_scores, cached_maps = cached_targets(batch, (8, 8))
    assert torch.equal(cached_scores, cached)  # the whole frames' scores
    assert not cached_targets.map_from_teacher and not cached_maps.any()  # its maps of whole frames come with the data


class _PartlyBlindTeacher(ExternalTeacher):
    name, version, identity = "blind", "test", "blind-v1"

    def predict(self, frames_bgr: Sequence[np.ndarray]) -> TeacherOutput:
        return TeacherOutput(np.array([np.nan] + [0.5] * (len(frames_bgr) - 1)), None)


def test_a_crop_without_a_teacher_score_keeps_the_frames_score() -> None:
    from memgaze.train.kd_targets import ExternalTargets

    frames = [np.full((16, 16, 3), 90, np.uint8)] * 3
    cached = torch.tensor([0.1, 0.2, 0.3])
    scores, maps = ExternalTargets(_PartlyBlindTeacher(), cached, online=True)(_batch(frames, [0, 0, 1]), (2, 2))
    assert scores.tolist() == pytest.approx([0.1, 0.5, 0.5]) and not maps.any()


def test_label_free_score_loss_is_in_units_of_the_teacher_variance() -> None:
    from memgaze.train.losses import LossWeights
    from memgaze.train.stages.distil_external import label_free_weights

    narrow = label_free_weights(LossWeights(), np.array([0.50, 0.52, 0.54, 0.56]))
    wide = label_free_weights(LossWeights(), np.array([0.1, 0.4, 0.6, 0.9]))
    assert narrow.student_score == 0.0 and narrow.student_score_kd == pytest.approx(1 / np.var([0.50, 0.52, 0.54, 0.56]))
    assert narrow.student_score_kd / wide.student_score_kd == pytest.approx(np.var([0.1, 0.4, 0.6, 0.9]) / np.var([0.50, 0.52, 0.54, 0.56]))
    assert narrow.student_map_kd == LossWeights().student_map_kd and narrow.student_gaze == LossWeights().student_gaze


def test_teacher_cached_trains_on_the_whole_frames_scores(tmp_path: Path, make_demo: Callable[..., Path]) -> None:
    data = make_demo(count=20, size=32, users=2, seed=3)
    proc = train("--data", str(data), "--out", str(tmp_path / "o"), "--teacher-model", str(TEACHER), "--teacher-cached", "--epochs-student", "1", *TINY)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "o" / "metrics.json").read_text())["distillation"]["teacher_online"] is False
    assert json.loads((tmp_path / "o" / "student.json").read_text())["training"]["teacher_online"] is False


def test_bad_teachers_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(MemgazeError, match="unknown --teacher-model 'memnet'.*resmem"):
        open_teacher("memnet")
    with pytest.raises(MemgazeError, match="no such file"):
        open_teacher(str(tmp_path / "missing.onnx"))
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(MemgazeError, match="not a valid ONNX model"):
        open_teacher(str(tmp_path / "junk.onnx"))
    with pytest.raises(MemgazeError, match="no score output"):
        open_teacher(str(_tiny_onnx(tmp_path / "features.onnx", ["n", 3, "h", "w"], reduce=False)), size=8)
    with pytest.raises(MemgazeError, match="--teacher-mean"):
        parse_channels("0.5,0.5", "--teacher-mean")


def test_resmem_missing_is_an_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "resmem" else real(name, *a))
    with pytest.raises(MemgazeError, match=r"pip install 'memgaze\[resmem\]'.*non-commercial"):
        open_teacher("resmem")


# -- frames, cache, data errors -------------------------------------------------------------------


def _write_video(path: Path, frames: Sequence[np.ndarray]) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (frames[0].shape[1], frames[0].shape[0]))
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


def test_videos_are_sampled_every_kth_frame_without_near_duplicates(tmp_path: Path, demo: Path) -> None:
    source = tmp_path / "camera"
    (source / "day").mkdir(parents=True)
    still = cv2.imread(str(sorted((demo / "images").iterdir())[0]))
    moving = [cv2.imread(str(p)) for p in sorted((demo / "images").iterdir())[1:31]]
    _write_video(source / "day" / "cam 1.avi", [still] * 30 + moving)  # frames 0-29 identical
    shutil.copy(sorted((demo / "images").iterdir())[40], source / "photo.jpg")
    cv2.imwrite(str(source / "scan.bmp"), still)
    frames = collect_frames(source, tmp_path / "out" / "images", 10, 2.0, WarningCounter("t"))
    names = frames.names
    assert names[:2] == ["photo.jpg", "scan.png"]
    assert names[2:] == [f"day/cam_1_f{i:06d}.jpg" for i in (0, 30, 40, 50)]  # 10 and 20 repeat frame 0
    assert frames.counts["video_frames_sampled"] == 6 and frames.counts["near_duplicates_skipped"] == 2
    assert all((tmp_path / "out" / "images" / n).is_file() for n in names)
    assert frames.groups == ["photo.jpg", "scan.png", *[f"day/cam_1.avi#{k}" for k in range(4)]]  # a short video: 1 frame per group


def test_neighbouring_video_frames_stay_on_one_side_of_the_split(tmp_path: Path) -> None:
    from memgaze.train.label_free.unlabelled_frames import STRETCH_MAX, write_splits

    names = [f"cam_f{i * 30:06d}.jpg" for i in range(200)]  # an hour-long video gives stretches of 10 frames
    groups = [f"cam.mp4#{i // STRETCH_MAX}" for i in range(200)]
    sizes = write_splits(tmp_path, names, np.linspace(0, 1, 200), 1, groups)
    side = {}
    for split in ("train", "val", "test"):
        for line in (tmp_path / "splits" / f"{split}_1.txt").read_text().splitlines():
            side[int(line.split()[0][5:11]) // 30] = split
    assert len(side) == 200 and sizes["held_out"] == 20 and sizes["val"] == 20 and sizes["train"] == 160
    assert all(len({side[i] for i in range(start, start + STRETCH_MAX)}) == 1 for start in range(0, 200, STRETCH_MAX))
    assert len({side[i] for i in range(200)}) == 3


class _CountingTeacher(ExternalTeacher):
    name, version, identity = "brightness", "test", "brightness-v1"

    def __init__(self) -> None:
        self.calls = 0

    def predict(self, frames_bgr: Sequence[np.ndarray]) -> TeacherOutput:
        self.calls += 1
        return TeacherOutput(np.array([f.mean() for f in frames_bgr], np.float64), None)


def test_teacher_outputs_are_cached_by_image_list(tmp_path: Path, demo: Path) -> None:
    teacher = _CountingTeacher()
    first = prepare(demo, tmp_path, teacher, every=30, min_change=2.0, fold=1, warnings=WarningCounter("t"))
    calls = teacher.calls
    again = prepare(demo, tmp_path, teacher, every=30, min_change=2.0, fold=1, warnings=WarningCounter("t"))
    assert calls > 0 and teacher.calls == calls and again.summary["teacher_outputs"] == "reused from cache"
    assert first.summary["scores_rescaled"] is True  # mean grey levels are not in [0, 1]
    lines = (first.root / "splits" / "test_1.txt").read_text().splitlines()
    assert len(lines) == FRAMES // 10 and all(0 <= float(line.split()[1]) <= 1 for line in lines)
    changed = tmp_path / "more"  # one more image: a new image list, whose known frames come from the first one's cache
    shutil.copytree(demo / "images", changed / "images")
    extra = np.full((40, 60, 3), 77, np.uint8)
    cv2.imwrite(str(changed / "images" / "extra.png"), extra)
    more = prepare(changed, tmp_path, teacher, every=30, min_change=2.0, fold=1, warnings=WarningCounter("t"))
    assert more.summary["teacher_outputs"] == "computed" and teacher.calls == calls + 1  # the new image alone


def test_teacher_outputs_of_a_subset_are_taken_from_a_cached_superset(tmp_path: Path, demo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from memgaze.train.label_free import unlabelled_frames

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    names = sorted(p.name for p in (demo / "images").iterdir())[:40]
    whole, _ = unlabelled_frames.teacher_outputs(_CountingTeacher(), demo, names, WarningCounter("t"))
    subset = tmp_path / "subset"
    (subset / "images").mkdir(parents=True)
    for index, name in enumerate(names[::3]):  # other names, same contents
        shutil.copy(demo / "images" / name, subset / "images" / f"renamed{index:02d}.jpg")
    teacher = _CountingTeacher()
    renamed = sorted(p.name for p in (subset / "images").iterdir())
    output, cached = unlabelled_frames.teacher_outputs(teacher, subset, renamed, WarningCounter("t"))
    assert teacher.calls == 0 and not cached  # nothing computed, yet not this list's own cache file
    np.testing.assert_allclose(output.scores, whole.scores[::3])
    assert unlabelled_frames.teacher_outputs(teacher, subset, renamed, WarningCounter("t"))[1] and teacher.calls == 0
    other = type("Other", (_CountingTeacher,), {"identity": "brightness-v2"})()  # another teacher reuses nothing
    unlabelled_frames.teacher_outputs(other, subset, renamed, WarningCounter("t"))
    assert other.calls > 0


class _InterruptedTeacher(_CountingTeacher):
    """Ctrl-C during its third batch."""

    def predict(self, frames_bgr: Sequence[np.ndarray]) -> TeacherOutput:
        if self.calls == 2:
            self.calls += 1
            raise KeyboardInterrupt
        return super().predict(frames_bgr)


def test_an_interrupted_scoring_resumes_where_it_stopped(tmp_path: Path, demo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from memgaze.train.label_free import unlabelled_frames

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # no other test's outputs of these frames
    monkeypatch.setattr(unlabelled_frames, "SAVE_EVERY", unlabelled_frames.BATCH)  # save after every batch
    names = sorted(p.name for p in (demo / "images").iterdir())[:80]
    with pytest.raises(KeyboardInterrupt):
        unlabelled_frames.teacher_outputs(_InterruptedTeacher(), demo, names, WarningCounter("t"))
    teacher = _CountingTeacher()
    output, cached = unlabelled_frames.teacher_outputs(teacher, demo, names, WarningCounter("t"))
    assert not cached and teacher.calls == 80 // unlabelled_frames.BATCH - 2  # the two batches done before Ctrl-C were kept
    whole = _CountingTeacher().predict([cv2.imread(str(demo / "images" / n)) for n in names]).scores
    np.testing.assert_allclose(output.scores, whole)
    assert unlabelled_frames.teacher_outputs(teacher, demo, names, WarningCounter("t"))[1]  # complete: reused


def run_main(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """``memgaze-train ARGS`` in this process: (exit code, stderr)."""
    from memgaze.train.cli import main

    capsys.readouterr()
    with pytest.MonkeyPatch.context() as patch, pytest.raises(SystemExit) as exit_info:
        patch.setattr(sys, "argv", ["memgaze-train", *args])
        main()
    return int(exit_info.value.code or 0), capsys.readouterr().err


def test_folder_without_media_is_a_one_line_error(tmp_path: Path, teacher_onnx: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no frames here")
    code, err = run_main(["--data", str(empty), "--out", str(tmp_path / "o"), "--teacher-model", str(teacher_onnx), "--device", "cpu"], capsys)
    assert code == 2 and "Traceback" not in err
    assert [line for line in err.splitlines() if line.startswith("error:")] == [line for line in err.splitlines() if "no image or video files" in line]
    code, err = run_main(["--data", str(empty), "--out", str(tmp_path / "o"), "--teacher-model", "memnet", "--device", "cpu"], capsys)
    assert code == 2 and err.startswith("error: unknown --teacher-model 'memnet'") and err.count("\n") == 1
    broken = tmp_path / "broken"
    broken.mkdir()
    for i in range(3):
        (broken / f"{i}.jpg").write_bytes(b"\xff\xd8\xff garbage")
    with pytest.raises(MemgazeError, match="0 frame"):
        prepare(broken, tmp_path, open_teacher(str(teacher_onnx)), every=30, min_change=2.0, fold=1, warnings=WarningCounter("t"))


def test_teacher_model_does_not_go_with_other_stages(tmp_path: Path, teacher_onnx: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for stage in ("teacher", "personalize"):
        code, err = run_main(["--data", str(tmp_path), "--teacher-model", str(teacher_onnx), "--stage", stage], capsys)
        assert code == 2 and err.startswith("error: --teacher-model") and f"--stage {stage}" in err
