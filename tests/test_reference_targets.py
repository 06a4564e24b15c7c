"""What a reference model gives beyond a score, learned by the student: its map as the generic viewer's map target
(cropped and flipped with each image), its embedding through feature distillation (a training-only head), and
ResMem's own map, Grad-CAM."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
import pytest

from memgaze.train.label_free import external_teacher
from memgaze.train.data.dataset import MemorabilityDataset, resize_map
from memgaze.train.label_free.external_teacher import ExternalTeacher, TeacherOutput


class BrightestCell(ExternalTeacher):
    """A stand-in reference model: score = mean brightness, map = brightness on a 4×4 grid, features = mean colour
    of each quadrant (12 numbers)."""

    name, version, identity, has_map, online_by_default = "brightest-cell", "test", "brightest-cell-v1", True, False

    def predict(self, frames_bgr: Sequence[np.ndarray]) -> TeacherOutput:
        grey = [cv2.resize(cv2.cvtColor(f, cv2.COLOR_BGR2GRAY), (4, 4), interpolation=cv2.INTER_AREA).astype(np.float32) for f in frames_bgr]
        maps = np.stack([g / g.sum() for g in grey])
        quads = [cv2.resize(f, (2, 2), interpolation=cv2.INTER_AREA).reshape(-1).astype(np.float32) / 255 for f in frames_bgr]
        return TeacherOutput(np.array([f.mean() for f in frames_bgr]), maps, np.stack(quads))


def test_resize_map_keeps_cell_centres_and_sums_to_one() -> None:
    heat = np.zeros((8, 8), np.float32)
    heat[2, 5] = 1.0
    big = resize_map(heat, (20, 20))
    assert big.shape == (20, 20) and big.sum() == pytest.approx(1.0) and big.min() >= 0
    y, x = np.unravel_index(big.argmax(), big.shape)
    assert (abs(y - (2 + 0.5) * 20 / 8 + 0.5) <= 1, abs(x - (5 + 0.5) * 20 / 8 + 0.5) <= 1) == (True, True)


def test_a_reference_map_is_the_generic_items_target_and_others_keep_the_users_gaze(make_demo) -> None:  # noqa: ANN001
    root = make_demo(count=24, size=64, users=2)
    first = MemorabilityDataset(root, "train", image_size=64).images[0].name
    hot = np.zeros((8, 8), np.float32)
    hot[0, 7] = 1.0  # top right
    data = MemorabilityDataset(root, "train", image_size=64, generic_maps={first: hot})
    plain = MemorabilityDataset(root, "train", image_size=64)
    item = data[0]
    assert item["user"] == 0 and item["has_heatmap"] and item["heatmap"].shape == (1, 8, 8)
    assert np.unravel_index(int(item["heatmap"].argmax()), (8, 8)) == (0, 7)
    np.testing.assert_array_equal(data[1]["heatmap"].numpy(), plain[1]["heatmap"].numpy())  # no reference map: the users'


def test_a_label_free_run_learns_the_reference_map_and_embedding(tmp_path: Path, make_demo, monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:  # noqa: ANN001
    from memgaze.train.cli import main
    from memgaze.train.label_free.unlabelled_frames import read_targets

    frames = make_demo(count=40, size=48, users=1)
    (tmp_path / "cfg.json").write_text(json.dumps({"loss": {"student_feature_kd": 1.0}}))
    monkeypatch.setitem(external_teacher.ADAPTERS, "brightest-cell", BrightestCell)
    out = tmp_path / "run"
    monkeypatch.setattr(sys, "argv", ["memgaze-train", "--teacher-model", "brightest-cell", "--data", str(frames / "images"),
                                      "--out", str(out), "--config", str(tmp_path / "cfg.json"), "--epochs-student", "2",
                                      "--image-size", "32", "--batch-size", "8", "--device", "cpu", "--workers", "0", "--no-cache",
                                      "--student-backbone", "mobilenet_v3_small"])
    with pytest.raises(SystemExit) as done:
        main()
    assert done.value.code in (0, None), capsys.readouterr().err
    given = read_targets(out / "label-free")
    assert given.maps is not None and given.features is not None and len(given.maps) == 40
    config = json.loads((out / "student.json").read_text())
    assert config["architecture"]["feature_dim"] == 12  # the training-only projection to the reference's embedding
    log = (out / "log.csv").read_text().splitlines()
    assert "loss_feature_kd" in log[0] and "loss_gaze" in log[0]  # both terms trained, logged per epoch
    test = json.loads((out / "metrics.json").read_text())["student"]["test"]
    assert np.isfinite(test["cc_generic_target"])  # the generic map measured against the reference's maps

    from memgaze.export.cli import main as export_main

    monkeypatch.setattr(sys, "argv", ["memgaze-export", "--checkpoint", str(out / "student.safetensors"), "--out", str(tmp_path / "deploy")])
    with pytest.raises(SystemExit) as exported:
        export_main()
    assert exported.value.code in (0, None), capsys.readouterr().err
    import onnx

    graph = onnx.load(str(tmp_path / "deploy" / "model.onnx")).graph
    assert not [t.name for t in graph.initializer if "feature_head" in t.name]
    assert all(tuple(t.dims) != (12, 576) for t in graph.initializer)  # the head (576 MobileNetV3 channels -> 12) is not in it


def test_resmem_gives_its_score_its_grad_cam_and_its_trunk_features() -> None:
    pytest.importorskip("resmem", reason="ResMem is not installed (pip install 'memgaze[resmem]')")
    import matplotlib

    photo = cv2.imread(str(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"))
    teacher = external_teacher.open_teacher("resmem")
    out = teacher.predict([photo, photo[:, ::-1].copy()])
    assert teacher.has_map and out.maps is not None and out.features is not None
    assert out.maps.shape == (2, 32, 32) and np.allclose(out.maps.sum(axis=(1, 2)), 1) and out.features.shape == (2, 2048)
    assert teacher.version.startswith("resmem ") and ((out.scores > 0) & (out.scores < 1)).all()
    assert abs(out.scores[0] - out.scores[1]) < 0.05  # a mirror image is about as memorable
    mirrored = out.maps[1][:, ::-1]
    cc = np.corrcoef(out.maps[0].ravel(), mirrored.ravel())[0, 1]
    assert cc > 0.8 and out.maps[0].max() > 2 / 32**2  # the map follows the content, and it is not flat


def test_grad_cam_of_the_centre_crop_is_placed_where_the_crop_lies_in_the_frame() -> None:
    import torch

    from memgaze.train.label_free.resmem import CROP_START, FRAME_MAP, RESMEM_RESIZE, RESMEM_SIZE, crop_map_in_frame

    flat = crop_map_in_frame(torch.ones(1, 8, 8))
    assert flat.shape == (1, FRAME_MAP, FRAME_MAP) and torch.allclose(flat, torch.ones_like(flat))  # edges carried out
    hot = torch.zeros(1, 8, 8)
    hot[0, 2, 6] = 1.0  # row 2, column 6 of the crop
    placed = crop_map_in_frame(hot)[0]
    y, x = np.unravel_index(int(placed.argmax()), placed.shape)
    cell = RESMEM_SIZE / 8 / RESMEM_RESIZE  # one crop cell, as a fraction of the frame
    want_x, want_y = (CROP_START / RESMEM_RESIZE + (k + 0.5) * cell for k in (6, 2))
    assert abs((x + 0.5) / FRAME_MAP - want_x) <= 1 / FRAME_MAP and abs((y + 0.5) / FRAME_MAP - want_y) <= 1 / FRAME_MAP
