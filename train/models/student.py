"""The student: a mobile backbone (MobileNetV3-Small or EfficientNet-Lite0) and a user-conditioned attention decoder to stride 8."""

from __future__ import annotations

import math

import torch
from torch import nn
from memgaze.train.models.backbones import DEFAULT_BACKBONE, build_trunk
from memgaze.train.models.blocks import AttentionFuse, MapHead, ScoreHead, check_input

STUDENT_NAME = "attention_film_student"  # the trunk (MobileNetV3-Small or EfficientNet-Lite0) is the ``backbone`` hyper-parameter


class FiLM(nn.Module):
    """Feature-wise linear modulation ``x * (1 + γ(e)) + β(e)`` from a user embedding ``e``."""

    def __init__(self, embed_dim: int, channels: int) -> None:
        super().__init__()
        self.gamma = nn.Linear(embed_dim, channels)
        self.beta = nn.Linear(embed_dim, channels)

    def forward(self, x: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        return x * (1.0 + self.gamma(embedding)[:, :, None, None]) + self.beta(embedding)[:, :, None, None]


class Student(nn.Module):
    """Lightweight personalised saliency/memorability model.

    A mobile backbone (``backbone``: see :mod:`memgaze.train.models.backbones`) tapped at strides
    8/16/32 → CBAM top-down decoder, FiLM-modulated per user
    at every stage → map logits ``[N, 1, H/8, W/8]`` plus a user "query" term (the user's
    preference over decoder features, a per-pixel dot product) → score from features pooled by
    the predicted map. ``user`` is int64 ``[N]`` (0 = generic); None means generic.
    """

    def __init__(
        self,
        num_users: int = 1,
        width: int = 64,
        embed_dim: int = 16,
        hidden: int = 128,
        backbone_weights: str | None = "imagenet",
        backbone: str = DEFAULT_BACKBONE,
        feature_dim: int = 0,
    ) -> None:
        super().__init__()
        self.enc8, self.enc16, self.enc32, (c8, c16, c32), self.pretrained_backbone = build_trunk(backbone, backbone_weights)
        self.fuse32 = AttentionFuse(c32, width)
        self.fuse16 = AttentionFuse(c16, width)
        self.fuse8 = AttentionFuse(c8, width)
        self.users = nn.Embedding(num_users, embed_dim)
        self.films = nn.ModuleList(FiLM(embed_dim, width) for _ in range(3))
        self.query = nn.Linear(embed_dim, width)
        self.query_scale = 1.0 / math.sqrt(width)
        self.map_head = MapHead(width)
        self.score_head = ScoreHead(width, c32, hidden)
        # Training only (feature distillation): the pooled stride-32 features projected to a reference model's
        # embedding (``feature_dim`` > 0). ``forward`` never uses it, so it is not in the exported graph.
        self.feature_head = nn.Linear(c32, feature_dim) if feature_dim > 0 else None
        self._row_mask: torch.utils.hooks.RemovableHandle | None = None
        self.frozen_backbone = False

    def freeze_backbone(self, weights: bool = True) -> None:
        """Keep the trunk's batch-norm statistics (pretrained) in training mode too, and with ``weights``
        stop its gradients (a fully frozen trunk); without, its weights still learn. Either way the
        features the decoder learns from keep the trunk's own statistics (and their INT8 ranges)."""
        self.frozen_backbone = True
        if weights:
            for module in self.trunk_modules():
                module.requires_grad_(False)
        self.train(self.training)

    def train(self, mode: bool = True) -> Student:
        super().train(mode)
        if self.frozen_backbone:
            for module in self.trunk_modules():
                module.eval()
        return self

    def trunk_modules(self) -> tuple[nn.Module, nn.Module, nn.Module]:
        """The backbone's three stages (strides 8, 16, 32)."""
        return self.enc8, self.enc16, self.enc32

    def backbone_parameters(self) -> list[nn.Parameter]:
        """Trunk parameters (for a lower learning rate when they start pretrained)."""
        return [p for m in self.trunk_modules() for p in m.parameters()]

    @property
    def num_users(self) -> int:
        return self.users.num_embeddings

    def forward(self, image: torch.Tensor, user: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        check_input(image)
        # Generic viewer: row 0, broadcast over the batch (no batch-size-dependent ops).
        embedding = self.users.weight[:1] if user is None else self.users(user)
        film32, film16, film8 = self.films
        c8 = self.enc8(image)
        c16 = self.enc16(c8)
        c32 = self.enc32(c16)
        p32 = film32(self.fuse32(c32), embedding)
        p16 = film16(self.fuse16(c16, p32), embedding)
        p8 = film8(self.fuse8(c8, p16), embedding)
        query = self.query(embedding)[:, :, None, None]
        logits = self.map_head(p8) + (p8 * query).sum(dim=1, keepdim=True) * self.query_scale
        return self.score_head(p8, logits, c32), logits

    def add_user(self) -> int:
        """Append one embedding row initialised from the generic row 0; return its index."""
        old = self.users
        new = nn.Embedding(old.num_embeddings + 1, old.embedding_dim).to(old.weight.device, old.weight.dtype)
        with torch.no_grad():
            new.weight[:-1].copy_(old.weight)
            new.weight[-1].copy_(old.weight[0])
        self.users = new
        if self._row_mask is not None:
            self._row_mask.remove()
            self._row_mask = None
        return new.num_embeddings - 1

    def embedding_only_parameters(self, index: int) -> list[torch.Tensor]:
        """Freeze everything but embedding row ``index`` (other rows get zero gradient); return the
        parameters to optimise. Use an optimizer without weight decay so the other rows stay put."""
        if not 0 <= index < self.num_users:
            raise IndexError(f"user index {index} out of range (0..{self.num_users - 1})")
        self.requires_grad_(False)
        weight = self.users.weight
        weight.requires_grad_(True)
        mask = torch.zeros(self.num_users, 1, device=weight.device, dtype=weight.dtype)
        mask[index] = 1.0
        if self._row_mask is not None:
            self._row_mask.remove()
        self._row_mask = weight.register_hook(lambda grad: grad * mask)
        return [weight]
