"""``evaluate.evaluate_maps`` (each image run once per viewer) against a direct computation, item by item."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from memgaze.train.data.dataset import MemorabilityDataset, list_users
from memgaze.train.distributed import DistContext
from memgaze.train.evaluate import cc_rows, evaluate_maps
from memgaze.train.compute import make_compute
from memgaze.train.models import build_model, default_config, to_heatmap


def direct_map_metrics(model: torch.nn.Module, dataset: MemorabilityDataset, viewers: int) -> dict[str, float]:
    """One forward per (item, viewer), the plain way."""
    own, other, generic, generic_target = [], [], [], []
    with torch.no_grad():
        for item in (dataset[i] for i in range(len(dataset))):
            if not bool(item["has_heatmap"]):
                continue
            image, target, user = item["image"][None], item["heatmap"][None], int(item["user"])
            cc = [float(cc_rows(to_heatmap(model(image, torch.tensor([k]))[1]), target)[0]) for k in range(viewers)]
            if user == 0:
                generic_target.append(cc[0])
                continue
            own.append(cc[user])
            generic.append(cc[0])
            other.append(np.mean([cc[k] for k in range(1, viewers) if k != user]))
    return {"cc_own_user": float(np.mean(own)), "cc_other_user": float(np.mean(other)),
            "cc_generic": float(np.mean(generic)), "cc_generic_target": float(np.mean(generic_target))}


@pytest.mark.parametrize("batch_size", [3, 16])
def test_map_metrics_match_item_by_item(demo_data: Path, batch_size: int) -> None:
    users = list_users(demo_data)
    torch.manual_seed(0)
    model = build_model(default_config("student", 64, users, backbone_weights="none")).eval()
    with torch.no_grad():  # distinct viewers, so a mixed-up viewer changes the figures
        model.users.weight.normal_(0.0, 2.0)
    dataset = MemorabilityDataset(demo_data, "val", image_size=64, users=users, mode="user")
    compute = make_compute(DistContext(device=torch.device("cpu")), "off", 0, 0)

    found = evaluate_maps(model, dataset, compute, batch_size, ["generic", *users])
    expected = direct_map_metrics(model, dataset, 1 + len(users))

    assert found["cc_other_user"] < found["cc_own_user"] - 1e-3 or found["cc_other_user"] > found["cc_own_user"] + 1e-3
    for name, value in expected.items():
        assert found[name] == pytest.approx(value, abs=1e-5), name
