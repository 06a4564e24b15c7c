"""``memgaze-bench personalization``: per user, on the held-out images of a split, three maps of a student
checkpoint against that user's own gaze: the generic map (user 0), the user's personalized map, and
another user's map (the next user of the checkpoint). Metrics as the MIT/Tübingen benchmark defines them
(:mod:`memgaze.metrics`): CC, KLD and SIM against the user's gaze map; NSS, AUC-Judd and sAUC against
the user's fixations, sAUC's negatives being the user's fixations on the *other* held-out images. Plus a
figure: one image, two users' fixations and their personalized maps, side by side.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from memgaze.bench.report import Block, Figure, Heading, Para, Table
from memgaze.console import WarningCounter
from memgaze.errors import fail

METRICS = ("cc", "kld", "sim", "nss", "auc_judd", "sauc")
MAPS = ("generic", "personalized", "other")
FIGURE = "personalization.png"


def _load(checkpoint: Path, root: Path, split: str, fold: int, limit: int | None) -> dict[str, Any]:
    """The student, its config, the split's images (normalized tensors) and a gaze store at its map size."""
    import torch

    from memgaze.layout import load_rgb, read_split
    from memgaze.train.checkpoint import load_checkpoint
    from memgaze.train.data.dataset import normalize_image
    from memgaze.train.data.gaze import GazeStore
    from memgaze.train.models import map_size

    model, config = load_checkpoint(checkpoint, expect_kind="student")
    side = int(config["input_size"][0])
    if len(config["users"]) < 3:
        fail(f"{checkpoint} knows {len(config['users']) - 1} user(s); the report compares a user with another: need two")
    warnings = WarningCounter("personalization")
    items = read_split(root, split, fold, warnings)[:limit]
    rgb = [(item, load_rgb(item.path, side)) for item in items]
    rgb = [(item, image) for item, image in rgb if image is not None]
    if not rgb:
        fail(f"{root}: no readable image in split {split}_{fold}")
    images = torch.stack([normalize_image(torch.from_numpy(image).permute(2, 0, 1)) for _, image in rgb])
    store = GazeStore(root, map_size(side), warnings=warnings)
    warnings.summary()
    return {"model": model, "config": config, "items": [item for item, _ in rgb], "rgb": [image for _, image in rgb],
            "images": images, "store": store}


def _predict(model: Any, images: Any, users: int) -> np.ndarray:
    """Maps ``[users, N, h, w]`` of the student conditioned on each user index."""
    import torch

    from memgaze.train.models import to_heatmap

    out = []
    with torch.no_grad():
        for user in range(users):
            maps = []
            for start in range(0, len(images), 16):
                chunk = images[start:start + 16]
                _, logits = model(chunk, torch.full((len(chunk),), user, dtype=torch.int64))
                maps.append(to_heatmap(logits.float())[:, 0].numpy())
            out.append(np.concatenate(maps))
    return np.stack(out)


def run_personalization(checkpoint: Path, root: Path, split: str = "test", fold: int = 1, limit: int | None = None,
                        out: Path = Path("runs/bench"), figure: Path | None = None) -> dict[str, Any]:
    """The per-user table (and the figure, in ``out`` and at ``figure`` if given)."""
    from memgaze.bench.machine import describe_machine
    from memgaze.layout import is_synthetic
    from memgaze.metrics import map_metrics

    loaded = _load(checkpoint, root, split, fold, limit)
    users, store, items = loaded["config"]["users"], loaded["store"], loaded["items"]
    predicted = _predict(loaded["model"], loaded["images"], len(users))
    rows = []
    for index, user in enumerate(users[1:], start=1):
        other_index = index % (len(users) - 1) + 1
        keep = [i for i, item in enumerate(items) if store.heatmap(user, item.name) is not None]
        if len(keep) < 2:
            continue
        gt = np.stack([store.heatmap(user, items[i].name) for i in keep])
        fix = np.stack([store.fixations(user, items[i].name) for i in keep])
        others = np.stack([fix[[j for j in range(len(keep)) if j != k]].any(axis=0) for k in range(len(keep))])
        row: dict[str, Any] = {"user": user, "images": len(keep), "other_user": users[other_index]}
        for name, k in zip(MAPS, (0, index, other_index)):
            row[name] = map_metrics(predicted[k][keep], gt, fix, others)
        rows.append(row)
    if not rows:
        fail(f"no user of {checkpoint} has gaze on two or more images of split {split}_{fold} of {root}")
    synthetic = is_synthetic(root)
    result = {
        "machine": describe_machine(), "checkpoint": str(checkpoint), "data": str(root), "split": f"{split}_{fold}",
        "synthetic": synthetic, "rows": rows,
        "mean": {name: {m: float(np.mean([r[name][m] for r in rows if m in r[name]])) for m in METRICS} for name in MAPS},
    }
    out.mkdir(parents=True, exist_ok=True)
    _figure(loaded, predicted, out / FIGURE, synthetic)
    if figure is not None:
        figure.parent.mkdir(parents=True, exist_ok=True)
        figure.write_bytes((out / FIGURE).read_bytes())
    return result


def _figure(loaded: dict[str, Any], predicted: np.ndarray, path: Path, synthetic: bool) -> None:
    """One held-out image with the most viewers: two users' fixations (dots) and their personalized maps."""
    import cv2

    from memgaze.bench.report import _pyplot, _save

    users, store, items = loaded["config"]["users"], loaded["store"], loaded["items"]
    best = max(range(len(items)), key=lambda i: sum(store.fixations(u, items[i].name) is not None for u in users[1:]))
    shown = [u for u in users[1:] if store.fixations(u, items[best].name) is not None][:2]
    if len(shown) < 2:
        fail("no held-out image has the fixations of two users: no figure")
    plt = _pyplot()
    fig, axes = plt.subplots(1, 4, figsize=(10, 2.9))
    rgb = loaded["rgb"][best]
    side = rgb.shape[0]
    for column, user in enumerate(shown):
        axes[2 * column].imshow(rgb)
        axes[2 * column].scatter(*_dots(store, user, items[best].name, side), s=30, c="yellow", edgecolors="black")
        axes[2 * column].set_title(f"{user}: fixations", fontsize=9)
        heat = cv2.resize(predicted[users.index(user)][best], (side, side), interpolation=cv2.INTER_LINEAR)
        axes[2 * column + 1].imshow(rgb)
        axes[2 * column + 1].imshow(heat, cmap="jet", alpha=0.5)
        axes[2 * column + 1].set_title(f"{user}: predicted map", fontsize=9)
    for axis in axes:
        axis.axis("off")
    fig.suptitle(f"{items[best].name}{' (SYNTHETIC scene and viewers)' if synthetic else ''}", fontsize=10)
    _save(fig, path)


def _dots(store: Any, user: str, name: str, side: int) -> tuple[np.ndarray, np.ndarray]:
    """A user's fixations on the ``side``-pixel image shown: the CSV's own positions where there are some, else
    the centres of the map pixels the binary fixation map marks (a PNG-only user's peaks)."""
    points = store.image_fixations(user, name)
    if points is not None:
        xy, (height, width) = points
        return (xy[:, 0] + 0.5) * side / width - 0.5, (xy[:, 1] + 0.5) * side / height - 0.5
    rows, cols = np.nonzero(store.fixations(user, name))
    scale = side / store.map_size[0]
    return (cols + 0.5) * scale - 0.5, (rows + 0.5) * scale - 0.5


def section(result: dict[str, Any], folder: Path) -> list[Block]:
    """Report blocks for a personalization result."""
    kind = "SYNTHETIC demo viewers (simulated gaze, not people)" if result["synthetic"] else "the viewers of " + result["data"]
    table = []
    for row in result["rows"]:
        for name in MAPS:
            label = {"generic": "generic", "personalized": "own (personalized)", "other": f"other user's ({row['other_user']})"}[name]
            table.append([row["user"], row["images"], label, *[row[name].get(m) for m in METRICS]])
    for name in MAPS:
        table.append(["mean", "", name, *[result["mean"][name].get(m) for m in METRICS]])
    blocks: list[Block] = [
        Heading("Personalization"),
        Para(f"Student {result['checkpoint']} on the held-out split {result['split']} of {result['data']}: {kind}. "
             "Each user's own gaze is the ground truth for three maps of the same model: the generic viewer's, the "
             "user's own (personalized), and another user's. CC, KLD (lower is better) and SIM against the user's "
             "gaze map; NSS, AUC-Judd and sAUC against the user's fixations (sAUC: the user's fixations on the other "
             "held-out images are the negatives, so centre bias alone scores 0.5)."),
        Table(["user", "images", "map", "CC", "KLD", "SIM", "NSS", "AUC-Judd", "sAUC"], table),
    ]
    if (folder / FIGURE).is_file():
        blocks.append(Figure(FIGURE, "One held-out image: two users' fixations and the maps the model predicts for each."))
    return blocks
