"""Teacher and student models: shapes, heatmaps, user conditioning, complexity, backbone weights, ONNX."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxslim
import onnxruntime as ort
import pytest
import torch
from torch import nn
from torchvision.models import mobilenet_v3_small

from memgaze.errors import MemgazeError
from memgaze.train.losses import map_loss
from memgaze.train.models import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Student,
    build_model,
    count_macs,
    count_params,
    default_config,
    to_heatmap,
)

SIZE = 64
USERS = ["generic", "ann", "bob"]


@pytest.fixture(scope="module")
def student() -> nn.Module:
    torch.manual_seed(0)
    return build_model(default_config("student", SIZE, USERS, backbone_weights="none")).eval()


@pytest.fixture(scope="module")
def teacher() -> nn.Module:
    torch.manual_seed(0)
    return build_model(default_config("teacher", SIZE, backbone_weights="none")).eval()


def images(n: int = 2, size: int = SIZE, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def test_normalization_constants_reexported() -> None:
    assert len(IMAGENET_MEAN) == 3 and len(IMAGENET_STD) == 3
    assert IMAGENET_MEAN[0] == pytest.approx(0.485) and IMAGENET_STD[2] == pytest.approx(0.225)


@pytest.mark.parametrize("kind", ["teacher", "student"])
def test_shapes_score_range_and_heatmap(kind: str, teacher: nn.Module, student: nn.Module) -> None:
    model = teacher if kind == "teacher" else student
    with torch.no_grad():
        score, logits = model(images(3), torch.tensor([0, 1, 2]))
    assert score.shape == (3,) and logits.shape == (3, 1, SIZE // 8, SIZE // 8)
    assert bool(((score >= 0) & (score <= 1)).all())
    heat = to_heatmap(logits)
    assert heat.shape == logits.shape and bool((heat >= 0).all())
    torch.testing.assert_close(heat.sum(dim=(2, 3)), torch.ones(3, 1))


def test_heatmap_is_stable_for_large_logits() -> None:
    logits = torch.tensor([[[[1000.0, 0.0], [0.0, -1000.0]]]])
    heat = to_heatmap(logits)
    assert torch.isfinite(heat).all() and heat[0, 0, 0, 0] == pytest.approx(1.0)


def test_config_contents_and_errors() -> None:
    config = default_config("student", (96, 64), ["ann"], width=32)
    assert config["users"] == ["generic", "ann"] and config["map_size"] == [12, 8]
    assert config["kind"] == "student" and config["architecture"]["width"] == 32
    assert config["normalization"]["mean"] == list(IMAGENET_MEAN)
    assert default_config("teacher", 64, ["ann"])["users"] == ["generic"]
    with pytest.raises(MemgazeError, match="multiple of 32"):
        default_config("student", 100)
    with pytest.raises(MemgazeError, match="unknown"):
        default_config("student", 64, depth=3)
    with pytest.raises(MemgazeError, match="kind"):
        default_config("critic", 64)
    bad = default_config("teacher", 64)
    bad["architecture"]["name"] = "vit"
    with pytest.raises(MemgazeError, match="architecture"):
        build_model(bad)


def test_odd_input_size_is_a_one_line_error(student: nn.Module) -> None:
    with pytest.raises(MemgazeError, match="multiple of 32"):
        student(torch.zeros(1, 3, 72, 64))


def test_user_conditioning_changes_the_map(student: nn.Module) -> None:
    x = images(2)
    with torch.no_grad():
        generic = student(x)[1]
        zeros = student(x, torch.zeros(2, dtype=torch.int64))[1]
        ann = student(x, torch.ones(2, dtype=torch.int64))[1]
        bob = student(x, torch.full((2,), 2, dtype=torch.int64))[1]
    torch.testing.assert_close(generic, zeros)  # None = generic viewer
    assert (to_heatmap(ann) - to_heatmap(bob)).abs().max() > 1e-4
    assert (ann - generic).abs().max() > 1e-2


def test_add_user_and_embedding_only_training() -> None:
    torch.manual_seed(0)
    model: Student = build_model(default_config("student", 32, USERS, backbone_weights="none")).eval()  # type: ignore[assignment]
    x = images(4, size=32)
    index = model.add_user()
    assert index == 3 and model.num_users == 4
    torch.testing.assert_close(model.users.weight[3], model.users.weight[0])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    params = model.embedding_only_parameters(index)
    assert params == [model.users.weight]
    assert sum(p.requires_grad for p in model.parameters()) == 1
    target = to_heatmap(torch.randn(4, 1, 4, 4, generator=torch.Generator().manual_seed(2)) * 3)
    optimizer = torch.optim.Adam(params, lr=0.1)
    user = torch.full((4,), index, dtype=torch.int64)
    has = torch.ones(4, dtype=torch.bool)
    losses = []
    for _ in range(5):
        loss = map_loss(model(x, user)[1], target, has)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    after = model.state_dict()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert changed == ["users.weight"]
    torch.testing.assert_close(after["users.weight"][:3], before["users.weight"][:3], rtol=0, atol=0)
    assert not torch.equal(after["users.weight"][3], before["users.weight"][3])


def test_frozen_backbone_keeps_its_statistics_while_training() -> None:
    from memgaze.train.config import OptimConfig
    from memgaze.train.stages.student import student_param_groups

    torch.manual_seed(0)
    model: Student = build_model(default_config("student", 32, USERS, backbone_weights="none"))  # type: ignore[assignment]
    model.freeze_backbone()
    model.train()
    assert not model.enc8.training and model.fuse8.training
    before = {k: v.clone() for k, v in model.state_dict().items()}
    groups = student_param_groups(model, OptimConfig(lr_student_backbone_mult=0.0))
    optimizer = torch.optim.AdamW(groups, lr=0.01)
    score, _ = model(images(4, size=32))
    score.sum().backward()
    optimizer.step()
    changed = {k.split(".")[0] for k, v in model.state_dict().items() if not torch.equal(before[k], v)}
    assert changed and not changed & {"enc8", "enc16", "enc32"}  # neither weights nor batch-norm statistics
    assert "fuse8" in changed and all(p.grad is None for p in model.backbone_parameters())


def test_frozen_statistics_let_the_trunk_weights_learn() -> None:
    from memgaze.train.config import OptimConfig
    from memgaze.train.stages.student import student_param_groups

    torch.manual_seed(0)
    model: Student = build_model(default_config("student", 32, USERS, backbone_weights="none"))  # type: ignore[assignment]
    model.freeze_backbone(weights=False)
    model.train()
    stats = {k: v.clone() for k, v in model.state_dict().items() if k.startswith("enc") and ("running_" in k or "num_batches" in k)}
    weights = {n: p.detach().clone() for n, p in model.named_parameters() if n.startswith("enc")}
    optimizer = torch.optim.AdamW(student_param_groups(model, OptimConfig(lr_student_backbone_mult=0.1, freeze_student_bn=True)), lr=0.01)
    score, _ = model(images(4, size=32))
    score.sum().backward()
    optimizer.step()
    assert stats and all(torch.equal(v, model.state_dict()[k]) for k, v in stats.items())
    assert any(not torch.equal(v, dict(model.named_parameters())[n]) for n, v in weights.items())



@pytest.mark.parametrize("share", [0.0, 0.25])
def test_score_map_grad_scales_what_the_score_teaches_the_map(share: float) -> None:
    torch.manual_seed(0)
    model: Student = build_model(default_config("student", 32, USERS, backbone_weights="none")).eval()  # type: ignore[assignment]
    x = images(3, size=32)

    def map_head_grad(scale: float) -> tuple[torch.Tensor, torch.Tensor]:
        model.zero_grad()
        model.score_head.map_grad = scale
        score, _ = model(x)
        score.sum().backward()
        return score.detach(), torch.cat([p.grad.flatten() for p in model.map_head.parameters()])

    full_score, full = map_head_grad(1.0)
    score, scaled = map_head_grad(share)
    assert torch.equal(score, full_score)  # the outputs do not change, only what flows back
    assert full.abs().sum() > 0
    torch.testing.assert_close(scaled, share * full, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize(("backbone", "max_params", "min_ratio"), [("mobilenet_v3_small", 3_000_000, 15), ("efficientnet_lite0", 5_000_000, 10)])
def test_complexity_at_224(backbone: str, max_params: int, min_ratio: int) -> None:
    student = build_model(default_config("student", 224, USERS, backbone_weights="none", backbone=backbone))
    teacher = build_model(default_config("teacher", 224, backbone_weights="none"))
    s_macs, t_macs = count_macs(student, 224), count_macs(teacher, 224)
    assert count_params(student) <= max_params
    assert t_macs >= min_ratio * s_macs
    assert 3e9 < t_macs < 8e9  # ResNet-50 alone is ~4.1 GMACs
    assert student.training and teacher.training  # mode restored


def test_backbone_weights_from_a_local_file(tmp_path: Path) -> None:
    reference = mobilenet_v3_small(weights=None)
    path = tmp_path / "mnv3.pth"
    torch.save(reference.state_dict(), path)  # includes classifier keys: ignored
    model = Student(backbone_weights=str(path), backbone="mobilenet_v3_small")
    torch.testing.assert_close(model.enc8[0][0].weight, reference.features[0][0].weight)
    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(MemgazeError, match="do not match"):
        Student(backbone_weights=str(tmp_path / "other.pth"), backbone="mobilenet_v3_small")
    (tmp_path / "junk.pth").write_bytes(b"not a pickle")
    with pytest.raises(MemgazeError, match="unreadable"):
        Student(backbone_weights=str(tmp_path / "junk.pth"), backbone="mobilenet_v3_small")
    with pytest.raises(MemgazeError, match="do not exist"):
        Student(backbone_weights=str(tmp_path / "missing.pth"), backbone="mobilenet_v3_small")


def test_imagenet_weights_from_hub_cache_or_one_warning(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    try:
        Student(backbone_weights="imagenet", backbone="mobilenet_v3_small")  # empty cache: no download attempt, one warning
        err = capsys.readouterr().err
        assert err.count("warning:") == 1 and "random initialisation" in err
        reference = mobilenet_v3_small(weights=None)
        cache = tmp_path / "hub" / "checkpoints"
        cache.mkdir(parents=True)
        torch.save(reference.state_dict(), cache / "mobilenet_v3_small-047dcff4.pth")
        model = Student(backbone_weights="imagenet", backbone="mobilenet_v3_small")
        assert "warning:" not in capsys.readouterr().err
        torch.testing.assert_close(model.enc32[-1][0].weight, reference.features[-1][0].weight)
    finally:
        torch.hub.set_dir(old)


class _Heatmaps(nn.Module):
    """What the deploy graph returns: score and the softmax heatmap."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor, user: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        score, logits = self.model(image, user)
        return score, to_heatmap(logits)


ALLOWED_OPS = {
    "Conv", "Relu", "HardSwish", "HardSigmoid", "Sigmoid", "GlobalAveragePool", "MaxPool", "ReduceMean", "ReduceMax",
    "ReduceSum", "Resize", "Concat", "Add", "Sub", "Mul", "Div", "Exp", "Gemm", "MatMul", "Gather", "Unsqueeze",
    "Squeeze", "Constant", "Identity", "Clip",  # Clip = EfficientNet-Lite0's ReLU6
}


@pytest.mark.parametrize("kind", ["student", "teacher"])
def test_onnx_export_matches_pytorch(kind: str, student: nn.Module, teacher: nn.Module, tmp_path: Path) -> None:
    wrapper = _Heatmaps(student if kind == "student" else teacher).eval()
    path = tmp_path / f"{kind}.onnx"
    example = (images(2), torch.tensor([0, 1]))
    axes = {name: {0: "batch"} for name in ("image", "user", "score", "heatmap")}
    with torch.no_grad():
        torch.onnx.export(
            wrapper, example, str(path), input_names=["image", "user"], output_names=["score", "heatmap"],
            dynamic_axes=axes, opset_version=17, dynamo=False,
        )
    wrapper.eval()  # the exporter restores the wrapper's (training) mode
    proto = onnxslim.slim(onnx.load(str(path)))  # as memgaze-export does: folds Lite0's TF-SAME Pad into Conv pads
    onnx.save(proto, str(path))
    onnx.checker.check_model(proto)
    ops = {node.op_type for node in proto.graph.node}
    assert ops <= ALLOWED_OPS, ops - ALLOWED_OPS
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x, user = images(3, seed=5), torch.tensor([2, 0, 1])
    feeds = {"image": x.numpy()}
    if kind == "student":
        assert "Gather" in ops and [i.name for i in session.get_inputs()] == ["image", "user"]
        feeds["user"] = user.numpy()
    got = session.run(None, feeds)
    with torch.no_grad():
        want = wrapper(x, user)
    for g, w in zip(got, want):
        assert g.shape == tuple(w.shape)
        np.testing.assert_allclose(g, w.numpy(), atol=1e-4, rtol=0)


def test_a_trunk_learns_at_a_tenth_of_the_rate_when_the_model_says_it_started_pretrained(tmp_path: Path) -> None:
    """One rule for teacher and student, asked of the model: ``pretrained_backbone`` says whether weights were loaded."""
    from safetensors.torch import save_file
    from torchvision.models import resnet50

    from memgaze.train.config import OptimConfig
    from memgaze.train.stages.context import trunk_lr_mult
    from memgaze.train.stages.student import student_param_groups

    trunk = resnet50(weights=None)
    weights = tmp_path / "resnet50.safetensors"
    save_file({k: v.contiguous() for k, v in trunk.state_dict().items() if not k.startswith("fc.")}, str(weights))
    random = build_model(default_config("teacher", SIZE, backbone_weights="none"))
    loaded = build_model(default_config("teacher", SIZE, backbone_weights=str(weights)))
    torch.testing.assert_close(loaded.layer4[2].conv3.weight, trunk.layer4[2].conv3.weight)
    assert (random.pretrained_backbone, loaded.pretrained_backbone) == (False, True)
    assert (trunk_lr_mult(None, random), trunk_lr_mult(None, loaded), trunk_lr_mult(0.5, loaded)) == (1.0, 0.1, 0.5)
    student = build_model(default_config("student", 32, USERS, backbone_weights="none"))
    assert student.pretrained_backbone is False
    assert [g["lr"] for g in student_param_groups(student, OptimConfig(lr_student=0.01))][2] == 0.01
