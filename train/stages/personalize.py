"""The personalize stage: add a user to a trained student by fitting only their embedding row to
their heatmaps, through the same training loop as the other stages (batch norm kept in eval mode).
It takes ``personalize.steps`` optimizer steps whatever the number of processes (each takes every step on its
share of the batches)."""

from __future__ import annotations

import dataclasses
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from memgaze.console import console
from memgaze.errors import fail
from memgaze.layout import FIXATIONS_NAME, load_rgb
from memgaze.train import losses
from memgaze.train.checkpoint import load_checkpoint, run_checkpoint, save_checkpoint
from memgaze.train.config import PersonalizeConfig
from memgaze.train.data.dataset import normalize_image
from memgaze.train.evaluate import cc_rows
from memgaze.train.data.gaze import GazeStore, fixation_users
from memgaze.train.compute import Batch, Compute
from memgaze.train.loop import StageSpec
from memgaze.train.models import Student, to_heatmap
from memgaze.train.stages.context import StageContext

EPOCHS = 5  # the step budget is spread over this many epochs (one progress line and state checkpoint each)


@dataclasses.dataclass
class UserHeatmaps(Dataset[dict[str, torch.Tensor]]):
    """Images and one user's heatmaps, cycled to ``length`` items (an epoch of a fixed number of steps on every process)."""

    images: torch.Tensor
    maps: torch.Tensor
    user: int
    length: int

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        row = i % len(self.images)
        return {"image": self.images[row], "heatmap": self.maps[row], "user": torch.tensor(self.user)}


def personalize(ctx: StageContext, user: str, gaze: Path, settings: PersonalizeConfig, cc_weight: float) -> dict[str, Any]:
    """Add ``user`` to ``OUT/student.safetensors``; return the held-out CC before and after.

    The previous checkpoint is kept as ``student.prev.safetensors`` (+ ``.json``); the new one
    replaces ``student.safetensors`` atomically.
    """
    path = run_checkpoint(ctx.out, "student")
    if not path.is_file():
        fail(f"no student checkpoint at {path}: train one first (--stage student or --stage all)")
    model, config = load_checkpoint(path, expect_kind="student")
    assert isinstance(model, Student)
    if user in config["users"]:
        fail(f"user {user!r} is already in {path} (users: {', '.join(config['users'])})")
    images, maps = user_heatmaps(ctx, user, gaze)
    if len(images) < settings.min_heatmaps:
        fail(
            f"found {len(images)} heatmap(s) of {user} in {gaze} matching images in {ctx.root / 'images'}; "
            f"need at least {settings.min_heatmaps}"
        )
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(ctx.seed))
    held = min(max(2, len(images) // 5), settings.max_held_out)
    fit, test = order[held:][: settings.max_heatmaps], order[:held]
    index = model.add_user()
    config["users"].append(user)
    model = ctx.compute.prepare(model).eval()
    before = user_cc(ctx.compute, model, images[test], maps[test], 0, ctx.batch_size)
    batch_size = min(ctx.batch_size, len(fit))
    steps_per_epoch = math.ceil(settings.steps / EPOCHS)
    processes = ctx.compute.ctx.world_size  # each takes every step, on its share of the epoch's items

    def loss_fn(net: nn.Module, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        _, logits = net(batch["image"], batch["user"])
        return losses.map_loss(logits.float(), batch["heatmap"], cc_weight=cc_weight), {}

    spec = StageSpec(
        name="personalize",
        model=model,
        param_groups=[{"params": model.embedding_only_parameters(index), "lr": settings.lr}],
        loss_fn=loss_fn,
        validate=lambda net: {"held_out_cc": user_cc(ctx.compute, net, images[test], maps[test], index, ctx.batch_size)},
        monitor=lambda metrics: -metrics["loss"],  # the held-out CC is reported, never chosen on
        train_set=UserHeatmaps(images[fit], maps[fit], index, steps_per_epoch * batch_size * processes),
        epochs=EPOCHS,
        train_mode=False,
    )
    # no weight decay, so the other users' rows stay exactly as they are; no early stop or averaging in a fixed budget
    ctx.fit(spec, dataclasses.replace(ctx.optim, weight_decay=0.0, patience=0, ema_decay=0.0), batch_size)
    after = user_cc(ctx.compute, model, images[test], maps[test], index, ctx.batch_size)
    result = {"heatmaps_fit": len(fit), "heatmaps_held_out": held, "cc_generic": before, "cc_personalized": after}
    config.setdefault("metrics", {}).setdefault("personalize", {})[user] = result
    if ctx.main:
        for suffix in (".safetensors", ".json"):
            shutil.copy2(path.with_suffix(suffix), ctx.out / f"student.prev{suffix}")
        save_checkpoint(path, model.to("cpu"), config)
        console.print(
            f"added user {user!r} as index {index} to {path} (previous: student.prev.safetensors); held-out "
            f"CC generic {before:.4f} -> personalized {after:.4f}",
            soft_wrap=True,
        )
    return result


def user_heatmaps(ctx: StageContext, user: str, gaze: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Images ``[n,3,S,S]`` and ``user``'s heatmaps ``[n,1,h,w]`` from ``gaze``: a folder of PNGs
    named like the images, or a folder with a fixations.csv (a CSV of a single other user name is
    taken as this user's)."""
    if not gaze.is_dir():
        fail(f"--gaze {gaze} is not a folder of heatmap PNGs or a fixations.csv")
    csv_file = gaze / FIXATIONS_NAME
    name = user
    if csv_file.is_file():
        found = sorted(fixation_users(csv_file))
        if user not in found:
            if len(found) != 1:
                fail(f"{csv_file} has no rows of user {user!r} (users there: {', '.join(found) or 'none'})")
            name = found[0]
        store = GazeStore(ctx.root, ctx.map_size, warnings=ctx.warnings, fixations_csv=csv_file)
    else:
        store = GazeStore(ctx.root, ctx.map_size, warnings=ctx.warnings, user_folders={user: gaze})
    images, maps = [], []
    for image in sorted((ctx.root / "images").iterdir()):
        heat = store.heatmap(name, image.name)
        if heat is None:
            continue
        rgb = load_rgb(image, ctx.image_size)
        if rgb is None:
            ctx.warnings.warn("unreadable image", f"image {image} cannot be decoded; skipped")
            continue
        images.append(normalize_image(torch.from_numpy(rgb).permute(2, 0, 1)))
        maps.append(torch.from_numpy(heat)[None])
    if not images:
        return torch.zeros(0), torch.zeros(0)
    return torch.stack(images), torch.stack(maps)


@torch.no_grad()
def user_cc(compute: Compute, model: nn.Module, images: torch.Tensor, maps: torch.Tensor, user: int, batch_size: int) -> float:
    """Mean map CC of ``model`` conditioned on ``user`` against ``maps``, ``batch_size`` images per forward pass."""
    rows = []
    for start in range(0, len(images), batch_size):
        chunk = images[start : start + batch_size].to(compute.device).contiguous(memory_format=torch.channels_last)
        users = torch.full((len(chunk),), user, dtype=torch.int64, device=compute.device)
        with compute.autocast():
            _, logits = model(chunk, users)
        rows.append(cc_rows(to_heatmap(logits.float()), maps[start : start + batch_size]))
    return float(np.concatenate(rows).mean())
