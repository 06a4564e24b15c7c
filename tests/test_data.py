"""LaMem split reader and MemorabilityDataset, including every kind of bad input."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from memgaze.console import WarningCounter
from memgaze.errors import MemgazeError
from memgaze.train.data.augment import JointAugment
from memgaze.train.config import AugmentConfig, OptimConfig
from memgaze.layout import read_split
from memgaze.train.data.dataset import MemorabilityDataset, list_users
from memgaze.train.data.gaze import GazeStore
from memgaze.train.normalization import IMAGENET_MEAN, IMAGENET_STD

USERS = ["user_bright", "user_faces", "user_shapes", "user_text"]


def _split_file(root: Path, split: str = "train") -> Path:
    return root / "splits" / f"{split}_1.txt"


def _append(root: Path, *lines: str, split: str = "train") -> None:
    with open(_split_file(root, split), "a") as handle:
        handle.write("\n".join(lines) + "\n")


def test_read_split_and_name_forms(demo_copy: Path) -> None:
    train = read_split(demo_copy, "train")
    assert len(train) == 29 and all(0 <= im.score <= 1 and im.path.is_file() for im in train)
    assert train[0].name.endswith(".jpg") and train[0].key == train[0].name[:-4]
    shutil.copy(demo_copy / "images" / "demo_00000.jpg", demo_copy / "images" / "extra.jpeg")
    cv2.imwrite(str(demo_copy / "images" / "pic.png"), np.full((20, 30, 3), 128, np.uint8))
    _split_file(demo_copy, "val").write_text(
        "# comment\n\ndemo_00001 0.5\nextra.jpeg 0.25 7 more columns\npic.png 1\npic2 0.0\n"
    )
    warnings = WarningCounter("t")
    val = read_split(demo_copy, "val", warnings=warnings)
    assert [(im.name, im.score, im.path.name) for im in val] == [
        ("demo_00001", 0.5, "demo_00001.jpg"),
        ("extra.jpeg", 0.25, "extra.jpeg"),
        ("pic.png", 1.0, "pic.png"),
    ]
    assert warnings.counts == {"missing image": 1}


def test_bad_split_lines_and_images_warn_once_each(demo_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    images = demo_copy / "images"
    data = (images / "demo_00001.jpg").read_bytes()
    (images / "cut.jpg").write_bytes(data[: len(data) // 2])  # truncated JPEG
    (images / "junk.jpg").write_bytes(b"this is not an image at all")
    (images / "empty.png").write_bytes(b"")
    _append(
        demo_copy,
        "lonely_name_without_score",
        "demo_00001.jpg notanumber",
        "demo_00001.jpg 1.5",
        "demo_00001.jpg -0.1",
        "demo_00001.jpg nan",
        "ghost.jpg 0.5",
        "cut.jpg 0.5",
        "junk.jpg 0.5",
        "empty.png 0.5",
    )
    first = _split_file(demo_copy).read_text().split()[0]
    _append(demo_copy, f"{first} 0.3")  # duplicate of a good line
    warnings = WarningCounter("t")
    images_read = read_split(demo_copy, "train", warnings=warnings)
    assert len(images_read) == 29
    assert warnings.counts == {
        "malformed line": 2, "score out of range": 3, "missing image": 1, "corrupt image": 3, "duplicate": 1,
    }
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 10 and "truncated JPEG" in err and "not a JPEG or PNG" in err
    read_split(demo_copy, "train")  # without a counter: warnings plus a summary line
    assert "train split: skipped 10" in capsys.readouterr().err


def test_empty_or_missing_split_is_a_clear_error(demo_copy: Path) -> None:
    _split_file(demo_copy, "val").write_text("")
    with pytest.raises(MemgazeError, match="has no usable images"):
        read_split(demo_copy, "val")
    _split_file(demo_copy, "test").write_text("ghost.jpg 0.5\n")
    with pytest.raises(MemgazeError, match="has no usable images"):
        MemorabilityDataset(demo_copy, "test", image_size=32, warnings=WarningCounter("t"))
    with pytest.raises(MemgazeError, match="does not exist"):
        read_split(demo_copy, "train", fold=2)
    with pytest.raises(MemgazeError, match="unknown split"):
        read_split(demo_copy, "holdout")
    with pytest.raises(MemgazeError, match="does not exist"):
        MemorabilityDataset(demo_copy / "nope", "train")
    read_split(demo_copy, "train")  # the other splits are unaffected


def test_list_users(demo_data: Path, tmp_path: Path) -> None:
    assert list_users(demo_data) == USERS
    assert list_users(tmp_path) == []


def test_image_mode_items(demo_data: Path) -> None:
    ds = MemorabilityDataset(demo_data, "val", image_size=32, warnings=WarningCounter("t"))
    assert len(ds) == 10 and ds.map_size == (4, 4) and ds.users == USERS
    item = ds[3]
    assert item["image"].shape == (3, 32, 32) and item["image"].dtype == torch.float32
    assert item["heatmap"].shape == (1, 4, 4) and item["heatmap"].sum().item() == pytest.approx(1.0, abs=1e-5)
    assert item["user"].dtype == torch.int64 and item["user"].item() == 0 and item["index"].item() == 3
    assert item["has_heatmap"].item() is True
    assert item["score"].item() == pytest.approx(ds.images[3].score)
    store = GazeStore(demo_data, (4, 4))
    mean_map = np.mean([store.heatmap(u, ds.images[3].name) for u in USERS], axis=0)
    np.testing.assert_allclose(item["heatmap"][0].numpy(), mean_map, rtol=1e-5)
    # Normalization: undoing mean/std gives back the 0..255 RGB pixels (RGB order, not BGR).
    mean, std = torch.tensor(IMAGENET_MEAN)[:, None, None], torch.tensor(IMAGENET_STD)[:, None, None]
    pixels = (item["image"] * std + mean) * 255
    np.testing.assert_allclose(pixels.permute(1, 2, 0).numpy(), ds.rgb(3), atol=1e-3)


def test_user_mode_items(demo_data: Path) -> None:
    ds = MemorabilityDataset(demo_data, "val", image_size=32, mode="user", warnings=WarningCounter("t"))
    assert len(ds) == 10 * 5
    users = torch.stack([ds[i]["user"] for i in range(len(ds))])
    assert sorted(set(users.tolist())) == [0, 1, 2, 3, 4] and int((users == 0).sum()) == 10
    store = GazeStore(demo_data, (4, 4))
    for i in range(len(ds)):
        item = ds[i]
        if item["user"].item() == 2:  # 1 + position of user_faces in USERS
            own = store.heatmap("user_faces", ds.images[item["index"].item()].name)
            np.testing.assert_allclose(item["heatmap"][0].numpy(), own, rtol=1e-5)
    only = MemorabilityDataset(demo_data, "val", image_size=32, mode="user", users=["user_text", "newbie"], warnings=WarningCounter("t"))
    assert len(only) == 20 and {only[i]["user"].item() for i in range(20)} == {0, 1}


def test_no_gaze_gives_zero_maps(demo_copy: Path) -> None:
    shutil.rmtree(demo_copy / "gaze")
    ds = MemorabilityDataset(demo_copy, "test", image_size=32, mode="user", warnings=WarningCounter("t"))
    assert len(ds) == 9 and ds.users == []
    item = ds[0]
    assert item["has_heatmap"].item() is False and item["heatmap"].abs().sum().item() == 0


def test_bad_heatmaps_are_left_out_of_the_items(demo_copy: Path) -> None:
    first = read_split(demo_copy, "val")[0].key
    (demo_copy / "gaze" / "user_text" / f"{first}.png").write_bytes(b"garbage")
    warnings = WarningCounter("t")
    ds = MemorabilityDataset(demo_copy, "val", image_size=32, mode="user", warnings=warnings)
    assert warnings.counts == {"unreadable heatmap": 1} and len(ds) == 49


def test_augmentation_is_joint(demo_data: Path) -> None:
    flip = JointAugment(16, AugmentConfig(min_scale=1.0, flip=1.0, jitter=0.0))
    image = torch.arange(3 * 16 * 16, dtype=torch.uint8).reshape(3, 16, 16)
    heat = torch.zeros(1, 4, 4)
    heat[0, 1, 0] = 1.0
    torch.manual_seed(0)
    out_image, out_heat = flip(image, heat)
    assert torch.equal(out_image, image.flip(-1))
    assert out_heat[0].argmax().item() == 1 * 4 + 3  # column 0 → column 3, same row
    colour_only = JointAugment(16, AugmentConfig(min_scale=1.0, flip=0.0, jitter=0.5))
    shaded, same_heat = colour_only(image, heat)
    assert same_heat[0].argmax().item() == 1 * 4 + 0 and not torch.equal(shaded, image)  # no crop, no flip: the map stays put
    torch.manual_seed(0)
    ds = MemorabilityDataset(demo_data, "train", image_size=32, augment=JointAugment(32), warnings=WarningCounter("t"))
    items = [ds[i] for i in range(6)]
    for item in items:
        assert item["image"].shape == (3, 32, 32) and item["heatmap"].shape == (1, 4, 4)
        assert item["heatmap"].sum().item() == pytest.approx(1.0, abs=1e-5)
    plain = MemorabilityDataset(demo_data, "train", image_size=32, warnings=WarningCounter("t"))
    assert any(not torch.equal(a["image"], plain[i]["image"]) for i, a in enumerate(items))
    torch.manual_seed(0)
    again = MemorabilityDataset(demo_data, "train", image_size=32, augment=JointAugment(32), warnings=WarningCounter("t"))
    assert all(torch.equal(a["image"], again[i]["image"]) for i, a in enumerate(items))


def test_dataloader_batches(demo_data: Path) -> None:
    ds = MemorabilityDataset(demo_data, "train", image_size=32, mode="user", warnings=WarningCounter("t"))
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=8, shuffle=True)))
    assert batch["image"].shape == (8, 3, 32, 32) and batch["user"].shape == (8,)
    assert batch["heatmap"].shape == (8, 1, 4, 4) and batch["has_heatmap"].dtype == torch.bool


def test_bad_mode(demo_data: Path) -> None:
    with pytest.raises(MemgazeError, match="unknown dataset mode"):
        MemorabilityDataset(demo_data, "train", mode="viewer")


def test_stage_datasets_take_the_augment_section(demo_data: Path, tmp_path: Path) -> None:
    from torchvision.transforms import v2

    from memgaze.train.distributed import DistContext
    from memgaze.train.compute import make_compute
    from memgaze.train.stages.context import StageContext

    def crops(augmentation: AugmentConfig) -> list[bool]:
        ctx = StageContext(
            compute=make_compute(DistContext(device=torch.device("cpu")), "off", 0, 0), out=tmp_path, root=demo_data,
            synthetic=True, fold=1, image_size=32, batch_size=4, seed=0, cache=False, resume=False, optim=OptimConfig(),
            warnings=WarningCounter("t"), log=None, augmentation=augmentation,
        )
        train, val = ctx.dataset("train", "image", augment=True), ctx.dataset("val", "image")
        assert train.augment is not None and val.augment is None
        return [isinstance(step, v2.RandomResizedCrop) for step in train.augment.geometric.transforms]

    assert crops(AugmentConfig()) == [False, True]  # flip, then the scale-crop
    assert crops(AugmentConfig(min_scale=1.0)) == [False]
