"""The stages of ``memgaze-train``: teacher, student (distillation + gaze imitation), personalize."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
import torch
from torch import nn

from memgaze.atomic import write_json
from memgaze.console import WarningCounter, console
from memgaze.errors import fail
from memgaze.train import losses
from memgaze.train.checkpoint import load_checkpoint, save_checkpoint
from memgaze.train.config import TrainConfig
from memgaze.train.curves import MetricLog
from memgaze.train.data import MemorabilityDataset, list_users, normalize_image, read_split
from memgaze.train.distributed import DistContext, barrier, cleanup, setup
from memgaze.train.evaluate import cc_rows, map_metrics, predict_scores, score_metrics
from memgaze.train.external_teacher import ExternalTeacher
from memgaze.train.gaze import FIXATIONS_NAME, GazeStore, fixation_users
from memgaze.train.kd_targets import BatchTargets, ExternalTargets, ResNetTargets
from memgaze.train.layout import load_rgb
from memgaze.train.loop import Batch, Runtime, StageSpec, make_runtime, train_stage
from memgaze.train.models import build_model, count_macs, count_params, default_config, to_heatmap

TEACHER_FILE = "teacher.safetensors"
STUDENT_FILE = "student.safetensors"
METRICS_FILE = "metrics.json"


def run(cfg: TrainConfig, user: str | None = None, gaze: Path | None = None) -> None:
    """Run ``cfg.stage`` (``all`` = teacher then student) and update ``OUT/metrics.json``."""
    ctx = setup(cfg.device)
    try:
        out = _prepare_out(Path(cfg.out), ctx)
        if ctx.device.type == "cpu":
            torch.use_deterministic_algorithms(True, warn_only=True)
        rt = make_runtime(ctx, cfg.amp, cfg.workers, cfg.seed)
        root, synthetic = _resolve_data(cfg, out, ctx)
        run_ = _Run(cfg, rt, out, root, synthetic)
        if cfg.teacher_model is not None:  # label-free: the external model is the teacher
            run_.label_free()
        else:
            if cfg.stage in ("teacher", "all"):
                run_.teacher()
            if cfg.stage in ("student", "all"):
                run_.student()
        if cfg.stage == "personalize":
            assert user is not None and gaze is not None
            run_.personalize(user, gaze)
        run_.finish()
    finally:
        cleanup()


def _prepare_out(out: Path, ctx: DistContext) -> Path:
    """Create ``out`` and check it is writable; one-line error otherwise."""
    if ctx.is_main:
        try:
            out.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=out, prefix=".write-test"):
                pass
        except OSError as exc:
            fail(f"cannot write to --out {out}: {exc.strerror or exc}")
    barrier(ctx)
    return out


def _resolve_data(cfg: TrainConfig, out: Path, ctx: DistContext) -> tuple[Path, bool]:
    """The dataset root; ``demo`` generates a synthetic one under ``OUT/demo-data`` (once)."""
    if cfg.data == "demo":
        root = out / "demo-data"
        if ctx.is_main:
            if not (root / "splits").is_dir():
                from memgaze.train.demo import make_demo_dataset

                console.print(
                    f"generating a SYNTHETIC demo dataset ({cfg.demo_count} images, {cfg.demo_users} users) in {root}"
                )
                make_demo_dataset(root, cfg.demo_count, cfg.demo_image_size, cfg.demo_users, cfg.seed)
            console.print(f"training on SYNTHETIC demo data: {root} (scores and gaze are simulated)")
        barrier(ctx)
        return root, True
    root = Path(cfg.data)
    if not root.is_dir():
        fail(f"--data {root} is not a folder (give a dataset root in the LaMem layout, or 'demo')")
    synthetic = (root / "README.txt").is_file() and "synthetic" in (root / "README.txt").read_text(errors="replace").lower()
    if synthetic and ctx.is_main:
        console.print(f"training on SYNTHETIC demo data: {root}")
    return root, synthetic


class _Run:
    """State shared by the stages of one invocation."""

    def __init__(self, cfg: TrainConfig, rt: Runtime, out: Path, root: Path, synthetic: bool) -> None:
        self.cfg, self.rt, self.out, self.root, self.synthetic = cfg, rt, out, root, synthetic
        self.main = rt.ctx.is_main
        self.warnings = WarningCounter("data")
        self.log = MetricLog(out, cfg.resume) if self.main else None
        self.metrics = _read_metrics(out / METRICS_FILE)
        self.map_size = cfg.image_size // 8
        self.cache = (rt.device.type == "cuda") if cfg.cache is None else cfg.cache
        self.distilled_from: dict[str, Any] | None = None  # label-free: the external teacher, for the checkpoint

    # -- datasets ---------------------------------------------------------------------------
    def dataset(self, split: str, mode: str, users: list[str] | None = None, augment: bool = False) -> Any:
        """A split of the data; ``users`` are the real users (model index 1 + position).

        With the image cache under torchrun, rank 0 builds it while the others wait, then reuse it.
        """
        cache = (self.out / "cache") if self.cache else None
        if cache is not None and not self.main:
            barrier(self.rt.ctx)
        data = MemorabilityDataset(
            self.root,
            split,
            fold=self.cfg.fold,
            image_size=self.cfg.image_size,
            map_size=self.map_size,
            users=users,
            mode=mode,
            augment=augment,
            cache=cache,
            warnings=self.warnings,
        )
        if cache is not None and self.main:
            barrier(self.rt.ctx)
        if len(data) == 0:
            fail(f"{self.root}: the {split} split has no usable images")
        return data

    @staticmethod
    def fixation_lookup(users: list[str], dataset: Any) -> Any:
        """``(user index, image index) -> bool [h, w] | None``: the binary fixation map for NSS."""
        return lambda user, index: dataset.gaze.fixations(users[user], dataset.images[index].name)

    # -- stages -----------------------------------------------------------------------------
    def teacher(self) -> None:
        cfg = self.cfg
        torch.manual_seed(cfg.seed)
        config = default_config("teacher", cfg.image_size, backbone_weights=cfg.backbone_weights or "imagenet")
        model = build_model(config)
        train_set = self.dataset("train", "image", augment=True)
        val_set = self.dataset("val", "image")
        bs = cfg.batch_size

        weights = loss_weights(cfg)

        def loss_fn(net: nn.Module, b: Batch) -> tuple[torch.Tensor, dict[str, float]]:
            score, logits = net(b["image"])
            return losses.teacher_loss(score.float(), logits.float(), b, weights)

        spec = StageSpec(
            name="teacher",
            model=model,
            param_groups=[
                {"params": model.backbone_parameters(), "lr": cfg.lr_teacher * backbone_lr_mult(cfg)},
                {"params": model.head_parameters(), "lr": cfg.lr_teacher},
            ],
            loss_fn=loss_fn,
            validate=lambda net: _prefix("val_", score_metrics(net, val_set, self.rt, bs)),
            monitor=lambda m: _finite(m["val_spearman"]),
            train_set=train_set,
            epochs=cfg.epochs_teacher,
        )
        result = self.train(spec)
        test = score_metrics(model, self.dataset("test", "image"), self.rt, bs)
        self.save("teacher", model, config, test, result.epochs_run)

    def student(self, external: ExternalTeacher | None = None) -> None:
        """Distil the student from OUT/teacher.safetensors, or from ``external`` (label-free: the
        split's scores are already the external model's)."""
        cfg = self.cfg
        if external is None:
            teacher_path = self.out / TEACHER_FILE
            if not teacher_path.is_file():
                fail(f"no teacher checkpoint at {teacher_path}: train it first (--stage teacher or --stage all)")
            teacher, _ = load_checkpoint(teacher_path, expect_kind="teacher")
            teacher = self.rt.prepare(teacher).eval().requires_grad_(False)
        people = list_users(self.root)
        users = ["generic", *people]
        torch.manual_seed(cfg.seed)
        config = default_config("student", cfg.image_size, users)
        model = build_model(config)
        train_set = self.dataset("train", "user", people, augment=True)
        val_scores = self.dataset("val", "image")
        val_maps = self.dataset("val", "user", people)
        bs = cfg.batch_size

        weights = loss_weights(cfg)
        targets: BatchTargets
        if external is None:
            plain = self.dataset("train", "image")
            scores = torch.from_numpy(predict_scores(teacher, plain, self.rt, bs)[:, 0]).float().to(self.rt.device)
            targets = ResNetTargets(teacher, scores)
        else:
            scores = torch.from_numpy(train_set.scores).to(self.rt.device)
            targets = ExternalTargets(external, scores, self.teacher_online(external))
            weights = label_free_weights(weights, train_set.scores)
        if not targets.map_from_teacher:
            weights = dataclasses.replace(weights, student_map_kd=0.0)

        def loss_fn(net: nn.Module, b: Batch) -> tuple[torch.Tensor, dict[str, float]]:
            score, logits = net(b["image"], b["user"])
            t_score, t_logits = targets(b, (logits.shape[-2], logits.shape[-1]))
            return losses.student_loss(score.float(), logits.float(), t_score, t_logits, b, weights)

        def validate(net: nn.Module) -> dict[str, float]:
            result = _prefix("val_", score_metrics(net, val_scores, self.rt, bs))
            maps = map_metrics(net, val_maps, self.rt, bs, users)
            result["val_cc"] = maps["cc_own_user"]
            return result

        def monitor(m: dict[str, float]) -> float:
            value = _finite(m["val_spearman"])
            return value + _finite(m["val_cc"]) if cfg.monitor_student == "spearman+cc" else value

        spec = StageSpec(
            name="student",
            model=model,
            param_groups=student_param_groups(model, cfg),
            loss_fn=loss_fn,
            validate=validate,
            monitor=monitor,
            train_set=train_set,
            epochs=cfg.epochs_student,
        )
        result = self.train(spec)
        test_maps = self.dataset("test", "user", people)
        test = score_metrics(model, self.dataset("test", "image"), self.rt, bs)
        test.update(map_metrics(model, test_maps, self.rt, bs, users, self.fixation_lookup(users, test_maps)))
        self.save("student", model, config, test, result.epochs_run)

    def label_free(self) -> None:
        """``--teacher-model``: score the frames of ``--data`` with the external model (cached), write
        them as a dataset under OUT/label-free and distil the student from it; no ResNet teacher."""
        from memgaze.train.external_teacher import open_teacher, parse_channels
        from memgaze.train.label_free import FOLDER, prepare

        cfg = self.cfg
        assert cfg.teacher_model is not None
        mean, std = parse_channels(cfg.teacher_mean, "--teacher-mean"), parse_channels(cfg.teacher_std, "--teacher-std")
        external = open_teacher(cfg.teacher_model, cfg.teacher_size, mean, std)
        summary: dict[str, Any] = {}
        if self.main:
            if cfg.stage == "all":
                console.print("label-free: the external model is the teacher, so only the student stage runs")
            summary = prepare(
                self.root, self.out, external, every=cfg.video_every, min_change=cfg.video_min_change,
                fold=cfg.fold, warnings=self.warnings,
            ).summary
        barrier(self.rt.ctx)
        self.root = self.out / FOLDER
        online = self.teacher_online(external)
        self.distilled_from = {"teacher_model": external.name, "teacher_version": external.version, "teacher_online": online}
        if self.main:
            how = "on every augmented batch (online)" if online else "through its cached scores of whole frames"
            console.print(f"the student imitates {external.name} {how}")
        self.metrics.pop("teacher", None)  # an earlier run's ResNet teacher did not teach this student
        self.metrics.pop("macs_ratio", None)
        self.student(external)
        if self.main:
            test = self.metrics["student"]["test"]
            summary.update(
                teacher_online=online, spearman_vs_teacher=test["spearman"], pearson_vs_teacher=test["pearson"],
                gaze_users=list_users(self.root),
            )
            self.metrics["distillation"] = summary
            console.print(
                f"distilled from {external.name} ({external.version}) on {summary['frames']} unlabelled frames "
                f"({summary['train']} train, {summary['val']} val, {summary['held_out']} held out); student vs teacher "
                f"on the held-out frames: Spearman {test['spearman']:.4f}, Pearson {test['pearson']:.4f}",
                soft_wrap=True,
            )

    def teacher_online(self, external: ExternalTeacher) -> bool:
        """Whether ``external`` runs on every augmented batch (``teacher_online``, else its default)."""
        return external.online_by_default if self.cfg.teacher_online is None else self.cfg.teacher_online

    def personalize(self, user: str, gaze: Path) -> None:
        """Add ``user`` to ``OUT/student.safetensors`` by fitting only their embedding to their heatmaps.

        The previous checkpoint is kept as ``student.prev.safetensors`` (+ ``.json``); the new
        one replaces ``student.safetensors`` atomically.
        """
        cfg = self.cfg
        path = self.out / STUDENT_FILE
        if not path.is_file():
            fail(f"no student checkpoint at {path}: train one first (--stage student or --stage all)")
        model, config = load_checkpoint(path, expect_kind="student")
        if user in config["users"]:
            fail(f"user {user!r} is already in {path} (users: {', '.join(config['users'])})")
        images, maps = self.user_heatmaps(user, gaze)
        if len(images) < cfg.personalize_min:
            fail(
                f"found {len(images)} heatmap(s) of {user} in {gaze} matching images in {self.root / 'images'}; "
                f"need at least {cfg.personalize_min}"
            )
        order = torch.randperm(len(images), generator=torch.Generator().manual_seed(cfg.seed))
        held = max(2, len(images) // 5)
        fit, test = order[held:][: cfg.personalize_max], order[:held]
        index = model.add_user()
        config["users"].append(user)
        model = self.rt.prepare(model).eval()
        params = model.embedding_only_parameters(index)
        optimizer = torch.optim.Adam(params, lr=cfg.lr_personalize)
        device = self.rt.device
        fit_images, fit_maps = images[fit].to(device), maps[fit].to(device)
        before = self.user_cc(model, images[test], maps[test], 0)
        generator = torch.Generator().manual_seed(cfg.seed)
        for step in range(1, cfg.personalize_steps + 1):
            pick = torch.randint(len(fit), (min(cfg.batch_size, len(fit)),), generator=generator)
            with self.rt.autocast():
                _, logits = model(fit_images[pick], torch.full((len(pick),), index, dtype=torch.int64, device=device))
            loss = losses.map_loss(logits.float(), fit_maps[pick], cc_weight=cfg.loss_cc)
            if not torch.isfinite(loss).item():
                fail(f"personalize: loss is {loss.item()} at step {step}; lower lr_personalize. {path} is unchanged")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        after = self.user_cc(model, images[test], maps[test], index)
        result = {"heatmaps_fit": len(fit), "heatmaps_held_out": held, "cc_generic": before, "cc_personalized": after}
        config.setdefault("metrics", {}).setdefault("personalize", {})[user] = result
        if self.main:
            for suffix in (".safetensors", ".json"):
                shutil.copy2(path.with_suffix(suffix), self.out / f"student.prev{suffix}")
            save_checkpoint(path, model.to("cpu"), config)
            console.print(
                f"added user {user!r} as index {index} to {path} (previous: student.prev.safetensors); held-out "
                f"CC generic {before:.4f} -> personalized {after:.4f}",
                soft_wrap=True,
            )
        self.metrics.setdefault("personalize", {})[user] = result

    def user_heatmaps(self, user: str, gaze: Path) -> tuple[torch.Tensor, torch.Tensor]:
        """Images ``[n,3,S,S]`` and ``user``'s heatmaps ``[n,1,h,w]`` from ``gaze`` (PNGs or fixations.csv)."""
        if not gaze.is_dir():
            fail(f"--gaze {gaze} is not a folder of heatmap PNGs or a fixations.csv")
        with tempfile.TemporaryDirectory() as tmp:
            view = Path(tmp)
            (view / "gaze").mkdir()
            os.symlink((self.root / "images").resolve(), view / "images")
            csv_file = gaze / FIXATIONS_NAME
            name = user
            if csv_file.is_file():
                os.symlink(csv_file.resolve(), view / "gaze" / FIXATIONS_NAME)
                found = sorted(fixation_users(csv_file))
                if user not in found:
                    if len(found) != 1:
                        fail(f"{csv_file} has no rows of user {user!r} (users there: {', '.join(found) or 'none'})")
                    name = found[0]
            else:
                os.symlink(gaze.resolve(), view / "gaze" / user)
            store = GazeStore(view, self.map_size, warnings=self.warnings)
            images, maps = [], []
            for image in sorted((self.root / "images").iterdir()):
                heat = store.heatmap(name, image.name)
                if heat is None:
                    continue
                rgb = load_rgb(image, self.cfg.image_size)
                if rgb is None:
                    self.warnings.warn("unreadable image", f"image {image} cannot be decoded; skipped")
                    continue
                images.append(normalize_image(torch.from_numpy(rgb).permute(2, 0, 1)))
                maps.append(torch.from_numpy(heat)[None])
        if not images:
            return torch.zeros(0), torch.zeros(0)
        return torch.stack(images), torch.stack(maps)

    @torch.no_grad()
    def user_cc(self, model: nn.Module, images: torch.Tensor, maps: torch.Tensor, user: int) -> float:
        """Mean map CC of ``model`` conditioned on ``user`` against ``maps``."""
        device = self.rt.device
        users = torch.full((len(images),), user, dtype=torch.int64, device=device)
        with self.rt.autocast():
            _, logits = model(images.to(device), users)
        return float(cc_rows(to_heatmap(logits.float()), maps).mean())

    # -- helpers ----------------------------------------------------------------------------
    def train(self, spec: StageSpec) -> Any:
        cfg = self.cfg
        return train_stage(
            spec,
            self.rt,
            batch_size=cfg.batch_size,
            weight_decay=cfg.weight_decay,
            warmup_frac=cfg.warmup_frac,
            grad_clip=cfg.grad_clip,
            patience=cfg.patience,
            out=self.out,
            resume=cfg.resume,
            log=self.log,
        )

    def save(self, kind: str, model: nn.Module, config: dict[str, Any], test: dict[str, Any], epochs: int) -> None:
        """Write ``OUT/<kind>.safetensors`` with its test metrics and record them in metrics.json."""
        size = self.cfg.image_size
        entry = {"params": count_params(model), "macs": count_macs(model, size), "test": test}
        config["metrics"] = {"test": test}
        config["training"] = {"epoch": epochs, "stage": kind, "data": str(self.root), "synthetic": self.synthetic}
        if self.distilled_from is not None:
            config["training"].update(self.distilled_from)
        if self.main:
            save_checkpoint(self.out / f"{kind}.safetensors", model.to("cpu"), config)
            console.print(f"{kind}: test " + "  ".join(f"{k} {v:.4f}" for k, v in test.items() if isinstance(v, float)), soft_wrap=True)
        self.metrics[kind] = entry
        barrier(self.rt.ctx)

    def finish(self) -> None:
        """Write metrics.json (rank 0) with the data summary and the student/teacher MACs ratio."""
        if not self.main:
            return
        self.metrics["data"] = {"path": str(self.root), "synthetic": self.synthetic, **self.data_counts()}
        teacher, student = self.metrics.get("teacher"), self.metrics.get("student")
        if teacher and student:
            self.metrics["macs_ratio"] = teacher["macs"] / max(1, student["macs"])
        write_json(self.out / METRICS_FILE, _json_safe(self.metrics))
        self.warnings.summary()
        if self.log is not None:
            self.log.close()

    def data_counts(self) -> dict[str, Any]:
        quiet = WarningCounter("data")
        counts = {f"{split}_images": len(read_split(self.root, split, self.cfg.fold, quiet)) for split in ("train", "val", "test")}
        return {**counts, "users": list_users(self.root)}


USER_MODULES = ("users.", "films.", "query.")


def student_param_groups(model: nn.Module, cfg: TrainConfig) -> list[dict[str, Any]]:
    """The student's parameters; the user conditioning (embedding, FiLM, query) at ``lr_user_mult`` ×."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    user = [p for n, p in named if n.startswith(USER_MODULES)]
    rest = [p for n, p in named if not n.startswith(USER_MODULES)]
    return [{"params": rest, "lr": cfg.lr_student}, {"params": user, "lr": cfg.lr_student * cfg.lr_user_mult}]


def backbone_lr_mult(cfg: TrainConfig) -> float:
    """``lr_backbone_mult``, or by default 0.1 for a pretrained trunk and 1.0 for one trained from scratch."""
    if cfg.lr_backbone_mult is not None:
        return cfg.lr_backbone_mult
    from torchvision.models import ResNet50_Weights

    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(ResNet50_Weights.IMAGENET1K_V2.url).path).name
    return 0.1 if cfg.backbone_weights or cached.is_file() else 1.0


def label_free_weights(weights: losses.LossWeights, scores: np.ndarray) -> losses.LossWeights:
    """Label-free loss weights: the labels are the external model's scores, so of the two score
    terms only the distillation one remains, measured in units of the training scores' variance
    (an external model's scores may span a narrow range, where their MSE vanishes next to the
    map terms)."""
    per_variance = 1.0 / max(float(np.var(scores)), 1e-8)
    return dataclasses.replace(weights, student_score=0.0, student_score_kd=weights.student_score_kd * per_variance)


def loss_weights(cfg: TrainConfig) -> losses.LossWeights:
    """The loss weights of ``cfg``."""
    return losses.LossWeights(
        teacher_score=cfg.teacher_w_score,
        teacher_map=cfg.teacher_w_map,
        student_score=cfg.student_w_score,
        student_score_kd=cfg.student_w_score_kd,
        student_map_kd=cfg.student_w_map_kd,
        student_gaze=cfg.student_w_gaze,
        kd_temperature=cfg.kd_temperature,
        cc=cfg.loss_cc,
    )


def _prefix(prefix: str, values: dict[str, float]) -> dict[str, float]:
    return {prefix + k: v for k, v in values.items()}


def _finite(value: float) -> float:
    return value if math.isfinite(value) else -1.0


def _read_metrics(path: Path) -> dict[str, Any]:
    """The metrics.json of an earlier stage (a student-only run keeps the teacher's entry)."""
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _json_safe(value: Any) -> Any:
    """NaN/inf → None so metrics.json is strict JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value
