"""Teacher trunk choice: ResNet-152 from the resmem wheel (``--backbone-weights resmem``), offline."""

from __future__ import annotations

import pytest
import torch

from memgaze.errors import MemgazeError
from memgaze.train.config import build_config
from memgaze.train.models import build_model, count_macs, default_config
from memgaze.train.normalization import IMAGENET_MEAN, IMAGENET_STD

pytest.importorskip("resmem", reason="resmem is not installed")
SIZE = 64


def test_resmem_trunk_loads_into_resnet152_for_imagenet_normalized_input() -> None:
    from memgaze.train.label_free.resmem import load_resmem

    teacher = build_model(default_config("teacher", SIZE, arch="resnet152", backbone_weights="resmem")).eval()
    trunk = load_resmem().features
    torch.testing.assert_close(teacher.layer4[2].conv3.weight, trunk.layer4[2].conv3.weight)
    raw = torch.rand(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    normalized = (raw - torch.tensor(IMAGENET_MEAN)[:, None, None]) / torch.tensor(IMAGENET_STD)[:, None, None]
    stem = teacher.stem
    with torch.no_grad():
        ours = stem[1](stem[0](normalized))  # conv1 + bn1 on ImageNet-normalized pixels
        resmem = trunk.bn1(trunk.conv1(raw))  # ResMem feeds its trunk [0, 1] pixels
    inner = (slice(None), slice(None), slice(2, -2), slice(2, -2))  # outputs whose 7x7 window misses the zero padding
    torch.testing.assert_close(ours[inner], resmem[inner], atol=1e-4, rtol=1e-4)


def test_teacher_arch_choice_and_errors() -> None:
    with pytest.raises(MemgazeError, match="teacher-arch resnet152"):
        build_model(default_config("teacher", SIZE, arch="resnet50", backbone_weights="resmem"))
    with pytest.raises(MemgazeError, match="unknown teacher arch"):
        build_model(default_config("teacher", SIZE, arch="vgg16", backbone_weights="none"))
    deep = build_model(default_config("teacher", SIZE, arch="resnet152", backbone_weights="none"))
    base = build_model(default_config("teacher", SIZE, backbone_weights="none"))
    assert count_macs(deep, SIZE) > 2 * count_macs(base, SIZE)
    assert build_config(None, {"teacher_arch": "resnet152", "backbone_weights": "resmem"}).teacher_arch == "resnet152"
