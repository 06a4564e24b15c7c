"""Batches of photos of one kind and the score-order loss inside each kind: composed, deterministic, trained with."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch

from memgaze.errors import MemgazeError
from memgaze.train.data.kind_batches import KindBatchSampler, read_training_groups
from memgaze.train.losses import group_rank_loss, rank_agreement_loss

from train_fixtures import TINY, train

TEACHER = Path(__file__).parent / "data" / "demo_teacher.int8.onnx"


def test_batches_hold_two_kinds_half_a_batch_each_and_follow_the_generator() -> None:
    groups = np.array([0] * 40 + [1] * 21 + [2] * 9 + [-1] * 17)
    sampler = KindBatchSampler(groups, 16, torch.Generator().manual_seed(3))
    batches = list(sampler)
    assert len(batches) == len(sampler) == (5 + 2 + 1 + 2) // 2  # whole chunks of 8, two per batch
    for batch in batches:
        assert len(batch) == 16 and len(set(batch)) == 16
        halves = [set(groups[batch[:8]]), set(groups[batch[8:]])]
        assert all(len(half) == 1 for half in halves)  # each half is one kind (the ungrouped form one of their own)
    again = list(KindBatchSampler(groups, 16, torch.Generator().manual_seed(3)))
    other = list(KindBatchSampler(groups, 16, torch.Generator().manual_seed(4)))
    assert again == batches and other != batches


def test_the_loss_inside_groups_ignores_the_order_between_them() -> None:
    target = torch.tensor([0.1, 0.2, 0.3, 0.7, 0.8, 0.9, 0.5])
    groups = torch.tensor([0, 0, 0, 1, 1, 1, -1])
    kinds_only = torch.tensor([0.3, 0.2, 0.1, 0.9, 0.8, 0.7, 0.5])  # each kind's level right, each kind's order reversed
    assert rank_agreement_loss(kinds_only, target).item() < 0.3  # the pooled order looks good
    assert group_rank_loss(kinds_only, target, groups).item() == pytest.approx(2.0, abs=1e-5)  # inside the kinds: reversed
    assert group_rank_loss(target * 3 + 1, target, groups).item() == pytest.approx(0.0, abs=1e-5)
    small = group_rank_loss(target, target, torch.tensor([0, 0, 1, 1, 2, 2, -1]))  # no group of 3: zero, in the graph
    assert small.item() == 0.0


def test_training_groups_come_from_the_first_grouping(tmp_path: Path) -> None:
    assert read_training_groups(tmp_path) is None
    (tmp_path / "groups.json").write_text(json.dumps({"scene": {"a.jpg": "animals"}, "package": {"a.jpg": "x"}}))
    assert read_training_groups(tmp_path) == {"a.jpg": "animals"}
    (tmp_path / "groups.json").write_text("[1, 2]")
    with pytest.raises(MemgazeError, match="not a groups file"):
        read_training_groups(tmp_path)


def test_a_label_free_run_trains_with_the_loss_inside_kinds(tmp_path: Path, make_demo: Callable[..., Path]) -> None:
    data = make_demo(count=40, size=32, users=1, seed=5)
    names = sorted(p.name for p in (data / "images").iterdir())
    (data / "groups.json").write_text(json.dumps({"scene": {n: "ab"[i % 2] for i, n in enumerate(names)}}))
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"loss": {"student_score_rank_group": 0.5}}))
    proc = train("--data", str(data), "--out", str(tmp_path / "o"), "--teacher-model", str(TEACHER), "--teacher-cached",
                 "--epochs-student", "1", "--config", str(config), *TINY)
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader((tmp_path / "o" / "log.csv").open()))
    assert rows and 0.0 < float(rows[-1]["loss_score_rank_group"]) <= 2.0
    (data / "groups.json").unlink()
    proc = train("--data", str(data), "--out", str(tmp_path / "p"), "--teacher-model", str(TEACHER), "--teacher-cached",
                 "--epochs-student", "1", "--config", str(config), *TINY)
    assert proc.returncode != 0 and "needs groups.json" in proc.stderr
