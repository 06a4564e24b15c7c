"""Training configuration: defaults < ``--config FILE`` (JSON) < explicit command-line options.

Keys of the JSON file (all optional; an unknown key is an error):

=====================  =======================================================================
data, out, stage       as the CLI options ``--data``, ``--out``, ``--stage``
fold                   LaMem split number k of ``splits/<split>_<k>.txt`` (1)
epochs_teacher/student as ``--epochs-teacher`` / ``--epochs-student`` (10; 3 for --data demo)
batch_size             images per step and process (16)
image_size             square input side in pixels, a multiple of 32 (224; demo_image_size for --data demo)
device                 ``auto`` | ``cpu`` | ``cuda`` | ``cuda:N``
seed                   seeds weights, data order and augmentation (0)
workers                DataLoader worker processes (null = 0 on CPU, min(8, cores) on CUDA)
cache                  preprocessed-image cache (null = on for CUDA, off on CPU)
backbone_weights       ImageNet ResNet-50 ``.pth``/``.safetensors`` for the teacher trunk
amp                    ``auto`` (bf16 if supported, else fp16 + GradScaler; CUDA only) | ``off``
lr_teacher             peak AdamW learning rate of the teacher head (1e-3)
lr_backbone_mult       teacher trunk lr = lr_teacher * this (null = 0.1 from pretrained weights, else 1)
lr_student             peak AdamW learning rate of the student (3e-3)
lr_user_mult           student user-conditioning (embedding, FiLM, query) lr = lr_student * this (10.0)
lr_personalize         Adam learning rate of a new user's embedding (0.05)
weight_decay           AdamW weight decay (1e-4)
warmup_frac            fraction of steps spent warming up (OneCycle ``pct_start``) (0.2)
grad_clip              max gradient norm, 0 = off (5.0)
patience               epochs without a better validation score before stopping (5)
monitor_teacher        validation metric for early stopping / best weights (``spearman``)
monitor_student        ``spearman`` or ``spearman+cc`` (score Spearman plus own-user map CC)
teacher_w_score        teacher loss weight of score regression (10.0; scores vary little, MSE is small)
teacher_w_map          teacher loss weight of the generic gaze map (1.0)
student_w_score        student weight of ground-truth score regression (1.0)
student_w_score_kd     student weight of the teacher-score distillation (1.0)
student_w_map_kd       student weight of the teacher-map distillation (0.5)
student_w_gaze         student weight of the user's gaze imitation (2.0)
kd_temperature         softmax temperature of the map distillation (2.0)
loss_cc                weight of the (1 - CC) term next to KL in every gaze-map loss (1.0)
personalize_steps      optimisation steps when adding a user (150)
personalize_max        heatmaps used at most when adding a user (200)
personalize_min        fewer heatmaps than this is an error (10)
demo_count, demo_users, demo_image_size   the dataset ``--data demo`` generates (400, 4, 128)
teacher_model          label-free distillation: ONNX file or adapter name (``resmem``) standing in for labels (null)
teacher_size           input side of an ONNX teacher whose input size is dynamic (null = from the model)
teacher_mean/std       ``"R,G,B"`` (0–1 units) normalization of a float-input ONNX teacher (null = metadata, else ImageNet)
teacher_online         with teacher_model: run the external model on every augmented batch, so its score and map
                       targets are of the crop the student sees (consistent distillation); false = its cached
                       scores of the whole frames (null = on for ONNX models, off for resmem)
video_every            with teacher_model: keep every K-th video frame (30)
video_min_change       with teacher_model: skip a frame whose 32×32 grey thumbnail differs from the last kept one
                       by less than this mean absolute grey level, 0–255 (2.0)
=====================  =======================================================================

The JSON reader accepts ``NaN``/``Infinity`` literals (Python's ``json``), which is how the NaN
stop is tested: ``{"lr_teacher": NaN}``.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from memgaze.errors import fail

STAGES = ("teacher", "student", "personalize", "all")
EPOCHS, DEMO_EPOCHS = 10, 3  # default epochs per stage: real data / --data demo (a few CPU minutes)


@dataclasses.dataclass
class TrainConfig:
    """Every knob of ``memgaze-train``; see the module docstring for the meaning of each key."""

    data: str = "demo"
    out: str = "runs/train"
    stage: str = "all"
    fold: int = 1
    epochs_teacher: int | None = None
    epochs_student: int | None = None
    batch_size: int = 16
    image_size: int | None = None
    device: str = "auto"
    seed: int = 0
    workers: int | None = None
    cache: bool | None = None
    backbone_weights: str | None = None
    resume: bool = False
    amp: str = "auto"
    lr_teacher: float = 1e-3
    lr_backbone_mult: float | None = None
    lr_student: float = 3e-3
    lr_user_mult: float = 10.0
    lr_personalize: float = 0.05
    weight_decay: float = 1e-4
    warmup_frac: float = 0.2
    grad_clip: float = 5.0
    patience: int = 5
    monitor_teacher: str = "spearman"
    monitor_student: str = "spearman+cc"
    teacher_w_score: float = 10.0
    teacher_w_map: float = 1.0
    student_w_score: float = 1.0
    student_w_score_kd: float = 1.0
    student_w_map_kd: float = 0.5
    student_w_gaze: float = 2.0
    kd_temperature: float = 2.0
    loss_cc: float = 1.0
    personalize_steps: int = 150
    personalize_max: int = 200
    personalize_min: int = 10
    demo_count: int = 400
    demo_users: int = 4
    demo_image_size: int = 128
    teacher_model: str | None = None
    teacher_size: int | None = None
    teacher_mean: str | None = None
    teacher_std: str | None = None
    teacher_online: bool | None = None
    video_every: int = 30
    video_min_change: float = 2.0

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-ready except NaN/inf floats, which ``json`` writes as literals)."""
        return dataclasses.asdict(self)


_FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}
MONITORS = ("spearman", "spearman+cc")


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Read a JSON config file into a dict; one-line error for a missing or malformed file."""
    file = Path(path)
    if not file.is_file():
        fail(f"config file {file} does not exist")
    try:
        values = json.loads(file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        fail(f"config file {file} is not valid JSON: {exc}")
    if not isinstance(values, dict):
        fail(f"config file {file} must hold a JSON object of settings")
    return values


def _coerce(name: str, value: Any) -> Any:
    """Check ``value`` against the annotated type of field ``name`` (ints become floats where needed)."""
    annotation = str(_FIELDS[name].type)
    kind = annotation.split(" |")[0]
    if value is None:
        if "None" in annotation:
            return None
        fail(f"config key {name!r} cannot be null")
    if kind == "bool":
        if not isinstance(value, bool):
            fail(f"config key {name!r} must be true or false, got {value!r}")
        return value
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            fail(f"config key {name!r} must be a number, got {value!r}")
        return float(value)
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            fail(f"config key {name!r} must be an integer, got {value!r}")
        return value
    if not isinstance(value, str):
        fail(f"config key {name!r} must be a string, got {value!r}")
    return value


def build_config(file_values: dict[str, Any] | None, overrides: dict[str, Any]) -> TrainConfig:
    """Defaults, then ``file_values``, then the non-None ``overrides`` (the CLI options)."""
    merged: dict[str, Any] = {}
    for source in (file_values or {}, {k: v for k, v in overrides.items() if v is not None}):
        for name, value in source.items():
            if name not in _FIELDS:
                fail(f"unknown config key {name!r} (known: {', '.join(sorted(_FIELDS))})")
            merged[name] = _coerce(name, value)
    config = TrainConfig(**merged)
    demo = config.data == "demo"
    if config.image_size is None:
        config.image_size = config.demo_image_size if demo else 224
    for name in ("epochs_teacher", "epochs_student"):
        if getattr(config, name) is None:
            setattr(config, name, DEMO_EPOCHS if demo else EPOCHS)
    _validate(config)
    return config


def _validate(config: TrainConfig) -> None:
    if config.stage not in STAGES:
        fail(f"--stage must be one of {', '.join(STAGES)}, got {config.stage!r}")
    for name in ("batch_size", "image_size", "personalize_steps", "personalize_min", "demo_count", "video_every"):
        if getattr(config, name) < 1:
            fail(f"{name} must be at least 1, got {getattr(config, name)}")
    for name in ("epochs_teacher", "epochs_student", "patience"):
        if getattr(config, name) < 0:
            fail(f"{name} must not be negative, got {getattr(config, name)}")
    if config.amp not in ("auto", "off"):
        fail(f"amp must be 'auto' or 'off', got {config.amp!r}")
    for name in ("monitor_teacher", "monitor_student"):
        if getattr(config, name) not in MONITORS:
            fail(f"{name} must be one of {', '.join(MONITORS)}, got {getattr(config, name)!r}")
    if config.teacher_size is not None and config.teacher_size < 1:
        fail(f"teacher_size must be at least 1, got {config.teacher_size}")
    if config.teacher_model is not None and config.stage in ("teacher", "personalize"):
        fail(f"--teacher-model trains the student from an external model; it does not go with --stage {config.stage}")
    if not 0.0 < config.warmup_frac < 1.0:
        fail(f"warmup_frac must be between 0 and 1, got {config.warmup_frac}")
