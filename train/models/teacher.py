"""The teacher: a ResNet-50 trunk and an FPN-like attention decoder to stride 8."""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models import ResNet50_Weights, resnet50

from memgaze.train.models.blocks import AttentionFuse, MapHead, ScoreHead, check_input, load_pretrained

TEACHER_NAME = "resnet50_attention_fpn"


class Teacher(nn.Module):
    """ResNet-50 layers 1–4 → CBAM top-down decoder (strides 32 → 16 → 8) → map logits + score.

    ``forward(image, user=None) -> (score [N] in [0, 1], map_logits [N, 1, H/8, W/8])``; the
    teacher models the generic viewer, so ``user`` is accepted and ignored.
    """

    def __init__(self, width: int = 256, hidden: int = 256, backbone_weights: str | None = "imagenet") -> None:
        super().__init__()
        trunk = resnet50(weights=None)
        trunk.fc = nn.Identity()
        load_pretrained(trunk, ResNet50_Weights.IMAGENET1K_V2, backbone_weights, "teacher ResNet-50 trunk")
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
