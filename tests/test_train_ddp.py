"""2 CPU processes (gloo): DistributedDataParallel training of both stages through torchrun; and, in processes this
test starts itself, rank 0's long work (labelling, the image cache) outlasting the group's collective timeout,
each process's own augmentation draws, and personalization's step count."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.multiprocessing as mp
from torch.utils.data import Dataset

from memgaze.console import WarningCounter
from memgaze.train.data.augment import JointAugment
from memgaze.train.checkpoint import save_checkpoint
from memgaze.train.compute import MAX_WORKERS, default_workers, make_compute, reseed_loader, training_loader
from memgaze.train.config import LabelFreeConfig, OptimConfig, PersonalizeConfig
from memgaze.train.data.dataset import list_users
from memgaze.train.distributed import DistContext, all_gather_objects, barrier, cleanup, setup
from memgaze.train.label_free.external_teacher import ExternalTeacher, TeacherOutput, open_teacher
from memgaze.train.models import build_model, default_config
from memgaze.train.stages.context import StageContext
from memgaze.train.stages.distil_external import label_frames
from memgaze.train.stages.personalize import personalize
from memgaze.train.label_free.unlabelled_frames import FOLDER

from train_fixtures import SCRIPT, TINY, tiny_data


def test_torchrun_two_processes(tmp_path: Path) -> None:
    data = tiny_data(tmp_path / "demo")
    out = tmp_path / "run"
    command = [  # torchrun, as the module its console script runs
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", SCRIPT,
        "--data", str(data), "--out", str(out), "--epochs-teacher", "1", "--epochs-student", "1", *TINY,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(command, capture_output=True, text=True, timeout=180, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"teacher", "student", "macs_ratio"} <= metrics.keys()
    assert (out / "student.safetensors").is_file()
    # rank 0 alone prints: one epoch line per stage
    assert proc.stderr.count("teacher      1/1") == 1, proc.stderr
    log = (out / "log.csv").read_text().splitlines()
    assert len(log) == 3  # header + one row per stage, written once


# -- 2 gloo processes in this test's own process group (torch.multiprocessing.spawn) ------------------------------

TIMEOUT = 2.0  # seconds: the collective timeout of the spawned processes' group
SLOW = 3.5  # seconds rank 0's external model takes beyond its work: longer than TIMEOUT
TEACHER = Path(__file__).parent / "data" / "demo_teacher.int8.onnx"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _process(rank: int, port: int, folder: Path, work: Callable[..., Any], args: tuple[Any, ...]) -> None:
    """One of two processes, as torchrun starts them: joins the group through :func:`setup` (collective timeout
    ``TIMEOUT``), runs ``work(ctx, folder, *args)`` and saves what it returns as ``folder/rank<r>.pt``."""
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", LOCAL_WORLD_SIZE="2",
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    ctx = setup("cpu", timeout=timedelta(seconds=TIMEOUT))
    try:
        torch.save(work(ctx, folder, *args), folder / f"rank{rank}.pt")
    finally:
        cleanup()


def _on_two_processes(folder: Path, work: Callable[..., Any], *args: Any) -> list[Any]:
    """What ``work`` returned on rank 0 and rank 1."""
    mp.spawn(_process, args=(_free_port(), folder, work, args), nprocs=2)
    return [torch.load(folder / f"rank{rank}.pt", weights_only=False) for rank in (0, 1)]


class SlowTeacher(ExternalTeacher):
    """The ONNX teacher memgaze exported (a real model on ONNX Runtime), slowed down by ``SLOW`` seconds once."""

    def __init__(self) -> None:
        super().__init__()
        self.model = open_teacher(str(TEACHER))
        self.name, self.version, self.identity = "slow", "test", f"slow:{self.model.identity}"
        self.slept = False

    def predict(self, frames_bgr: Sequence[np.ndarray]) -> TeacherOutput:
        if not self.slept:
            time.sleep(SLOW)
            self.slept = True
        return self.model.predict(frames_bgr)


def _stage(ctx: DistContext, out: Path, root: Path, *, cache: bool = False, workers: int = 0) -> StageContext:
    return StageContext(
        compute=make_compute(ctx, "off", workers, 3), out=out, root=root, synthetic=True, fold=1, image_size=32,
        batch_size=4, seed=0, cache=cache, resume=False, optim=OptimConfig(), warnings=WarningCounter("test"), log=None,
    )


def _label_and_cache(ctx: DistContext, folder: Path) -> dict[str, Any]:
    stage = _stage(ctx, folder / "out", folder / "frames", cache=True)
    started = time.monotonic()
    report = label_frames(stage, SlowTeacher(), LabelFreeConfig())
    waited = time.monotonic() - started
    train_set = stage.with_root(folder / "out" / FOLDER).dataset("train", "image")  # rank 0 caches, rank 1 reuses
    sizes = all_gather_objects(ctx, len(train_set))  # the training group still answers
    control = "passed"
    if ctx.is_main:
        time.sleep(SLOW)
    try:  # the same wait at a barrier of the training group does time out: TIMEOUT is in force
        barrier(ctx)
    except RuntimeError:
        control = "timed out"
    return {"waited": waited, "frames": report.get("frames"), "sizes": sizes, "control": control}


def test_rank_0_work_longer_than_the_collective_timeout_ends_no_process(tmp_path: Path) -> None:
    frames = tiny_data(tmp_path / "frames", count=24, users=1)
    shutil.rmtree(frames / "splits")
    main, other = _on_two_processes(tmp_path, _label_and_cache)
    assert main["frames"] == 24 and other["frames"] is None  # rank 0 labelled, rank 1 read its result
    assert other["waited"] > SLOW > TIMEOUT  # rank 1 waited past the group's timeout, and was not ended
    assert main["sizes"] == other["sizes"] and main["sizes"][0] > 0
    assert (tmp_path / "out" / "cache").is_dir()
    assert other["control"] == "timed out"


class OneImage(Dataset[dict[str, torch.Tensor]]):
    """The same picture and map at every index, augmented as training augments: batches differ only by the draws."""

    def __init__(self) -> None:
        self.image = torch.arange(3 * 32 * 32, dtype=torch.int64).remainder(251).to(torch.uint8).reshape(3, 32, 32)
        self.augment = JointAugment(32)

    def __len__(self) -> int:
        return 16

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        image, heat = self.augment(self.image, torch.ones(1, 4, 4) / 16)
        return {"image": image, "heatmap": heat}


def _first_batches(ctx: DistContext, folder: Path) -> dict[int, list[torch.Tensor]]:
    """For 0 and 1 loader workers: the first batch of epoch 1, twice from the same seed (a rerun)."""
    draws: dict[int, list[torch.Tensor]] = {}
    for workers in (0, 1):
        compute = make_compute(ctx, "off", workers, seed=3)
        for _ in range(2):
            torch.manual_seed(3)  # as a stage seeds its model before training
            loader = training_loader(OneImage(), 4, compute)
            reseed_loader(loader, compute, 1)
            draws.setdefault(workers, []).append(next(iter(loader))["image"])
    return draws


def test_each_process_draws_its_own_augmentations_reproducibly(tmp_path: Path) -> None:
    main, other = _on_two_processes(tmp_path, _first_batches)
    alone = _first_batches(DistContext(device=torch.device("cpu")), tmp_path)
    for workers in (0, 1):
        for rank in (main, other):
            assert torch.equal(rank[workers][0], rank[workers][1]), "a rerun with the same seed draws the same"
        assert not torch.equal(main[workers][0], other[workers][0]), "two processes drew the same augmentations"
        assert torch.equal(main[workers][0], alone[workers][0]), "rank 0 draws what a single process draws"


STEPS = 20  # personalize.steps: 4 per epoch over its 5 epochs


def _personalize(ctx: DistContext, folder: Path, user: str) -> int:
    settings = PersonalizeConfig(steps=STEPS, min_heatmaps=4)
    personalize(_stage(ctx, folder / "out", folder / "data"), user, folder / "data" / "gaze" / user, settings, 1.0)
    state = torch.load(folder / "out" / "state" / "personalize.pt", map_location="cpu", weights_only=True)
    return int(state["optimizer"]["state"][0]["step"])


def test_personalize_takes_its_steps_on_two_processes(tmp_path: Path) -> None:
    data = tiny_data(tmp_path / "data", count=24, users=1)
    (user,) = list_users(data)
    config = default_config("student", 32, [], backbone="mobilenet_v3_small", backbone_weights=None)
    save_checkpoint(tmp_path / "out" / "student.safetensors", build_model(config, pretrained=False), config)
    steps = _on_two_processes(tmp_path, _personalize, user)
    assert steps == [STEPS, STEPS]  # not STEPS / 2: each process takes every step on its half of each batch


def test_loader_workers_come_from_each_process_share_of_the_cpus() -> None:
    cpus = len(os.sched_getaffinity(0))
    gpu_alone, gpu_shared = (DistContext(device=torch.device("cuda"), local_world_size=n) for n in (1, cpus * 2))
    assert default_workers(gpu_alone) == min(MAX_WORKERS, cpus)
    assert gpu_shared.cpus == 1 and default_workers(gpu_shared) == 1  # never none: the GPU would wait for batches
    assert default_workers(DistContext(device=torch.device("cpu"))) == 0  # the CPU's cores compute the steps
