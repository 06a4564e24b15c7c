"""Training batches composed of photos of one kind, so that a loss can ask the student to order photos inside a kind.

With ``loss.student_score_rank_group`` set, each batch is made of :data:`GROUPS_PER_BATCH` chunks of half a batch,
each chunk drawn from one group of ``groups.json`` (e.g. animals, buildings): the score-order loss inside a
chunk cannot be met by telling the kinds apart. Each epoch shuffles every group's items, cuts them into chunks,
and shuffles the chunks (items of no group form a group of their own); the order depends only on the generator,
which the training loop reseeds from (seed, epoch).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from torch.utils.data import Sampler

from memgaze.errors import fail

GROUPS_FILE = "groups.json"
GROUPS_PER_BATCH = 2


def read_training_groups(root: Path) -> dict[str, str] | None:
    """The first grouping of ``root/groups.json`` (image name → group), or None when there is no such file."""
    path = root / GROUPS_FILE
    if not path.is_file():
        return None
    try:
        groupings = json.loads(path.read_text())
        first = next(iter(groupings.values()))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, StopIteration, AttributeError) as exc:
        fail(f"{path} is not a groups file (grouping → image → group): {exc!r}")
    if not isinstance(first, dict):
        fail(f"{path}: its first grouping must map image names to group names")
    return {str(name): str(group) for name, group in first.items()}


class KindBatchSampler(Sampler[list[int]]):
    """Batches of ``batch_size`` item indices, :data:`GROUPS_PER_BATCH` groups of half a batch each.

    ``groups`` holds the group id of each item (−1: none). A group's last chunk is dropped when it is short,
    and so is a batch whose chunks run out, so every batch is whole."""

    def __init__(self, groups: np.ndarray, batch_size: int, generator: torch.Generator) -> None:
        if batch_size < 2 * GROUPS_PER_BATCH:
            fail(f"grouped batches need batch_size >= {2 * GROUPS_PER_BATCH}, got {batch_size}")
        self.groups, self.batch_size, self.generator = np.asarray(groups), batch_size, generator
        self.chunk = batch_size // GROUPS_PER_BATCH

    def _chunks(self) -> list[list[int]]:
        chunks = []
        for group in np.unique(self.groups):
            members = np.flatnonzero(self.groups == group)
            order = members[torch.randperm(len(members), generator=self.generator).numpy()]
            chunks += [order[i : i + self.chunk].tolist() for i in range(0, len(order) - self.chunk + 1, self.chunk)]
        return [chunks[i] for i in torch.randperm(len(chunks), generator=self.generator).tolist()]

    def __iter__(self) -> Iterator[list[int]]:
        chunks = self._chunks()
        for start in range(0, len(chunks) - GROUPS_PER_BATCH + 1, GROUPS_PER_BATCH):
            yield [index for chunk in chunks[start : start + GROUPS_PER_BATCH] for index in chunk]

    def __len__(self) -> int:
        counts = np.unique(self.groups, return_counts=True)[1]
        return int(sum(count // self.chunk for count in counts)) // GROUPS_PER_BATCH
