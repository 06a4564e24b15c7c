"""What the student imitates in each batch: its teacher's score and map.

``targets(batch, map_hw) -> (scores [N], map logits [N, 1, h, w])``. Map targets are given for
generic items (``user == 0``) only; the others stay zero and the map-KD loss masks them out.

* :class:`ResNetTargets`: memgaze's own teacher. Scores of the un-augmented training images are
  computed once; maps are of the augmented crops.
* :class:`ExternalTargets`: a label-free run's external model. *Cached*: its scores of the whole
  frames (the split files); its maps of the whole frames, if it has any, are the dataset's generic
  map targets, cropped and flipped with each image (:class:`memgaze.train.data.dataset.MemorabilityDataset`).
  *Online* (consistent distillation): the model scores, and maps, every augmented crop the student
  sees, so a random crop or a colour change never leaves the student chasing the score of a
  different picture (on the demo, agreement with the teacher on unseen scenes rose from ρ 0.83
  cached to 0.88 online).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from memgaze.train.label_free.external_teacher import ExternalTeacher, map_log_targets
from memgaze.train.compute import Batch


class BatchTargets:
    """Per-batch distillation targets; ``map_from_teacher`` says whether map targets exist at all, ``features``
    (``[n, d]`` by training-image index, or None) the teacher's embedding of each image, for feature distillation."""

    map_from_teacher: bool
    features: torch.Tensor | None = None

    def __call__(self, batch: Batch, map_hw: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    @staticmethod
    def _empty_maps(batch: Batch, map_hw: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Zero map targets ``[N, 1, h, w]`` and the mask of generic items."""
        images = batch["image"]
        return torch.zeros(len(images), 1, *map_hw, device=images.device), batch["user"] == 0


class ResNetTargets(BatchTargets):
    """memgaze's ResNet teacher: ``scores`` of the un-augmented training images, maps run per batch."""

    map_from_teacher = True

    def __init__(self, teacher: nn.Module, scores: torch.Tensor) -> None:
        self.teacher, self.scores = teacher, scores

    @torch.no_grad()
    def __call__(self, batch: Batch, map_hw: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        maps, generic = self._empty_maps(batch, map_hw)
        if generic.any():
            maps[generic] = self.teacher(batch["image"][generic])[1].float()
        return self.scores[batch["index"]], maps


class ExternalTargets(BatchTargets):
    """An external model: cached ``scores`` of whole frames, or (``online``) its outputs on each crop."""

    def __init__(self, teacher: ExternalTeacher, scores: torch.Tensor, online: bool, features: torch.Tensor | None = None) -> None:
        self.teacher, self.scores, self.online, self.features = teacher, scores, online, features
        self.map_from_teacher = online and teacher.has_map  # cached maps come with the data

    def __call__(self, batch: Batch, map_hw: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        maps, generic = self._empty_maps(batch, map_hw)
        cached = self.scores[batch["index"]]
        if self.online:
            output = self.teacher.predict_images(batch["image"])
            scores = torch.from_numpy(output.scores).float().to(cached.device)
            scores = torch.where(torch.isfinite(scores), scores, cached)  # a crop the model gave no score keeps the frame's
            if output.maps is not None and generic.any():
                chosen = generic.cpu().numpy()
                maps[generic] = map_log_targets(np.ascontiguousarray(output.maps[chosen]), map_hw, maps.device)
            return scores, maps
        return cached, maps
