"""External memorability models that stand in for labels (``memgaze-train --teacher-model SPEC``).

SPEC is an ONNX file or a named adapter (:data:`ADAPTERS`); each runs on the training device where it can (ResMem in
torch; an ONNX model on ONNX Runtime's CUDA provider where the installed ONNX Runtime has it, else on the CPU with
the threads of this process's share of the machine). An ONNX teacher has one image input,
either ``uint8 [N, H, W, 3]`` BGR (memgaze's own bundle graphs: colour and normalization inside)
or ``float [N, 3, H, W]`` RGB normalized as ``(x/255 - mean) / std``; an optional ``user`` input
gets 0 (generic viewer). Its score is the output named ``score`` or the one shaped ``[N]``/``[N, 1]``;
its map, if any, the output named ``heatmap`` or the one shaped ``[N, 1, h, w]``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from memgaze.errors import fail
from memgaze.manifest import sha256_file
from memgaze.media import resize_frame
from memgaze.train.normalization import IMAGENET_MEAN, IMAGENET_STD

DEFAULT_BATCH = 16
MAP_EPS = 1e-8


@dataclass
class TeacherOutput:
    """Scores ``[N]`` (float64, NaN where the model gave none), maps ``[N, h, w]`` summing to 1 or None, and
    features ``[N, d]`` (the model's own image embedding, for feature distillation) or None."""

    scores: np.ndarray
    maps: np.ndarray | None
    features: np.ndarray | None = None


class ExternalTeacher:
    """A model run on BGR uint8 frames of any size. ``identity`` keys the cache of its outputs.

    ``online_by_default``: whether training runs it on every augmented batch (consistent
    distillation, see :mod:`memgaze.train.stages`) unless told otherwise; off for models too slow
    for that on a CPU.
    """

    name: str
    version: str
    identity: str
    has_map: bool = False
    online_by_default: bool = True

    def __init__(self, device: torch.device | None = None) -> None:
        self.device = device or torch.device("cpu")
        self.runs_on = str(self.device)  # where its predictions are computed, as the log says it

    def predict(self, frames_bgr: Sequence[np.ndarray]) -> TeacherOutput:
        raise NotImplementedError

    def describe(self) -> str:
        """One line: name, version and what it gives."""
        return f"{self.name} ({self.version}), {'score + map' if self.has_map else 'score only'}"

    @torch.no_grad()
    def predict_images(self, images: torch.Tensor) -> TeacherOutput:
        """Outputs for a batch of training images as the student sees them: normalized RGB ``[k, 3, S, S]``."""
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        rgb = (images.detach().float().cpu() * std + mean).clamp(0, 1).mul(255).round().to(torch.uint8)
        return self.predict(list(rgb.permute(0, 2, 3, 1).flip(-1).numpy()))


def map_log_targets(maps: np.ndarray, map_size: tuple[int, int], device: torch.device) -> torch.Tensor:
    """Map-KD targets from a teacher's maps ``[k, h', w']``: the log of each map resized to
    ``map_size`` (softmax of it is the map), ``[k, 1, h, w]`` on ``device``."""
    heat = F.interpolate(torch.from_numpy(maps)[:, None], size=map_size, mode="bilinear", align_corners=False, antialias=True)
    heat = heat.clamp_min(0)
    heat = heat / heat.sum(dim=(2, 3), keepdim=True).clamp_min(1e-12)
    return torch.log(heat + MAP_EPS).to(device)


class OnnxTeacher(ExternalTeacher):
    """An ONNX model on ONNX Runtime: on ``device``'s GPU through the CUDA provider where this ONNX Runtime has one
    (``onnxruntime-gpu``), else on the CPU with at most ``threads`` threads (None: ONNX Runtime's own choice, every
    core); see the module docstring for what the model must look like."""

    def __init__(
        self, path: Path, size: int | None = None, mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
        device: torch.device | None = None, threads: int | None = None,
    ) -> None:
        import onnxruntime as ort

        super().__init__(device)
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if threads is not None:
            options.intra_op_num_threads = threads
        providers: list[Any] = ["CPUExecutionProvider"]
        cuda = self.device.type == "cuda"
        if cuda and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, ("CUDAExecutionProvider", {"device_id": self.device.index or 0}))
        try:
            self.session = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as exc:  # noqa: BLE001 - ORT raises several types for a bad file
            fail(f"--teacher-model {path} is not a valid ONNX model ({_first_line(exc)})")
        on_gpu = self.session.get_providers()[0] == "CUDAExecutionProvider"
        self.runs_on = f"{self.device} (ONNX Runtime's CUDA provider)" if on_gpu else (
            f"the CPU ({threads or 'all'} thread(s))" + (": this ONNX Runtime has no CUDA provider (onnxruntime-gpu has)" if cuda else "")
        )
        meta = self.session.get_modelmeta()
        props = dict(meta.custom_metadata_map)
        self._image, self._user = self._inputs(path)
        shape = self._image.shape
        self.nhwc = self._image.type == "tensor(uint8)"
        self.height, self.width = _input_size(path, shape[1:3] if self.nhwc else shape[2:4], size, props)
        self.rgb = self.nhwc and "RGB" in props.get("input_layout", "").upper()
        self.mean, self.std = _normalization(mean, std, props)
        self.batch = shape[0] if isinstance(shape[0], int) and shape[0] > 0 else DEFAULT_BATCH
        self._score, self._map = _outputs(path, self.session.get_outputs())
        self.has_map = self._map is not None
        digest = sha256_file(path)
        self.name = path.name
        made_by = f"memgaze {props['memgaze_version']}" if "memgaze_version" in props else " ".join(
            v for v in (meta.producer_name, str(meta.version) if meta.version else "") if v
        )
        self.version = ", ".join(v for v in (made_by, f"sha256 {digest[:12]}") if v)
        norm = "in-graph" if self.nhwc else f"mean {list(self.mean)} std {list(self.std)}"
        self.identity = f"onnx:{digest}:{'nhwc' if self.nhwc else 'nchw'}:{self.height}x{self.width}:{norm}"

    def _inputs(self, path: Path) -> tuple[Any, Any]:
        inputs = self.session.get_inputs()
        images = [i for i in inputs if i.name != "user"]
        user = next((i for i in inputs if i.name == "user"), None)
        if len(images) != 1:
            fail(f"--teacher-model {path} must have one image input; it has {', '.join(i.name for i in images) or 'none'}")
        image = images[0]
        shape = image.shape
        nhwc = image.type == "tensor(uint8)" and len(shape) == 4 and shape[3] == 3
        nchw = image.type == "tensor(float)" and len(shape) == 4 and shape[1] == 3
        if not (nhwc or nchw):
            fail(
                f"--teacher-model {path}: input {image.name!r} is {image.type} {shape}; expected uint8 [N, H, W, 3] "
                "(BGR) or float [N, 3, H, W] (RGB)"
            )
        return image, user

    def predict(self, frames_bgr: Sequence[np.ndarray]) -> TeacherOutput:
        resized = [resize_frame(frame, (self.height, self.width)) for frame in frames_bgr]
        scores, maps = [], []
        for start in range(0, len(resized), self.batch):
            chunk = np.stack(resized[start : start + self.batch])
            if self.rgb or not self.nhwc:
                chunk = chunk[..., ::-1]
            if not self.nhwc:
                chunk = ((chunk.astype(np.float32) / 255.0 - self.mean) / self.std).transpose(0, 3, 1, 2)
            feed = {self._image.name: np.ascontiguousarray(chunk)}
            if self._user is not None:
                feed[self._user.name] = np.zeros(len(chunk), np.int64)
            names = [self._score.name] + ([self._map.name] if self._map is not None else [])
            result = self.session.run(names, feed)
            score = np.asarray(result[0], np.float64).reshape(-1)
            if len(score) != len(chunk):
                fail(f"--teacher-model {self.name}: output {self._score.name!r} gave {len(score)} values for {len(chunk)} images")
            scores.append(score)
            if self._map is not None:
                maps.append(_unit_maps(np.asarray(result[1], np.float32)[:, 0]))
        return TeacherOutput(np.concatenate(scores), np.concatenate(maps) if maps else None)


class ResMemTeacher(ExternalTeacher):
    """ResMem (PyPI ``resmem``, non-commercial licence) on ``device``, in one pass on its own input: its score, as its
    map the Grad-CAM of that score placed in the whole frame, and as features its ResNet-152 trunk's pooled last stage
    (:func:`memgaze.train.label_free.resmem.resmem_outputs`)."""

    has_map = True

    def __init__(self, device: torch.device | None = None) -> None:
        from memgaze.train.label_free.resmem import resmem_version

        super().__init__(device)
        version = resmem_version()
        self.name, self.version = "ResMem", f"resmem {version}"
        self.identity = f"resmem=={version}:gradcam-layer4-in-frame:pool2048"
        self.online_by_default = False  # a ResNet-152-sized model: about 0.6 s per frame on a 2-core CPU
        self._model: torch.nn.Module | None = None

    def predict(self, frames_bgr: Sequence[np.ndarray]) -> TeacherOutput:
        from memgaze.train.label_free.resmem import load_resmem, resmem_outputs

        if self._model is None:
            self._model = load_resmem().to(self.device)
        scores, maps, features = resmem_outputs(self._model, list(frames_bgr))
        return TeacherOutput(scores, _unit_maps(maps), features)


ADAPTERS: dict[str, type[ExternalTeacher]] = {"resmem": ResMemTeacher}


def open_teacher(
    spec: str, size: int | None = None, mean: Sequence[float] | None = None, std: Sequence[float] | None = None, *,
    device: torch.device | None = None, threads: int | None = None,
) -> ExternalTeacher:
    """The teacher named by ``spec``: an adapter name (:data:`ADAPTERS`) or an ONNX file, on ``device`` where it can
    run there (None: the CPU), with at most ``threads`` CPU threads (ONNX models); one-line error naming the choices."""
    adapter = ADAPTERS.get(spec.lower())
    if adapter is not None:
        return adapter(device)
    path = Path(spec)
    if path.suffix.lower() != ".onnx" and not path.exists():
        fail(f"unknown --teacher-model {spec!r}: give an .onnx file or one of: {', '.join(ADAPTERS)}")
    if not path.is_file():
        fail(f"--teacher-model {path}: no such file (give an ONNX model or one of: {', '.join(ADAPTERS)})")
    return OnnxTeacher(path, size, mean, std, device, threads)


def parse_channels(text: str | None, flag: str) -> tuple[float, float, float] | None:
    """``"0.485,0.456,0.406"`` → three floats (0–1 units); one-line error otherwise."""
    if text is None:
        return None
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 3 or not all(np.isfinite(values)):
        fail(f"{flag} must be three comma-separated numbers (R,G,B in 0–1 units), got {text!r}")
    return values  # type: ignore[return-value]


def _input_size(path: Path, dims: Sequence[Any], size: int | None, props: dict[str, str]) -> tuple[int, int]:
    """Static input dims, else ``--teacher-size``, else the ``input_size`` metadata ("HxW" or "S")."""
    if all(isinstance(d, int) and d > 0 for d in dims):
        return int(dims[0]), int(dims[1])
    if size is not None:
        return size, size
    text = props.get("input_size", "")
    try:
        parts = [int(v) for v in text.lower().split("x")]
        return (parts[0], parts[-1]) if len(parts) in (1, 2) else _no_size(path)
    except ValueError:
        return _no_size(path)


def _no_size(path: Path) -> tuple[int, int]:
    fail(f"--teacher-model {path} has a dynamic input size and no input_size metadata: give --teacher-size")


def _normalization(
    mean: Sequence[float] | None, std: Sequence[float] | None, props: dict[str, str]
) -> tuple[np.ndarray, np.ndarray]:
    """Flags, else the ``normalization`` metadata (JSON with mean/std), else the ImageNet values."""
    try:
        meta = json.loads(props.get("normalization", "{}"))
    except ValueError:
        meta = {}
    meta = meta if isinstance(meta, dict) else {}
    chosen_mean = mean if mean is not None else meta.get("mean", IMAGENET_MEAN)
    chosen_std = std if std is not None else meta.get("std", IMAGENET_STD)
    return np.asarray(chosen_mean, np.float32), np.asarray(chosen_std, np.float32)


def _outputs(path: Path, outputs: Sequence[Any]) -> tuple[Any, Any]:
    """(score output, map output or None)."""
    def per_image_value(shape: Sequence[Any]) -> bool:
        return len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)

    score = next((o for o in outputs if o.name == "score"), None) or next((o for o in outputs if per_image_value(o.shape)), None)
    if score is None:
        found = ", ".join(f"{o.name} {o.shape}" for o in outputs)
        fail(f"--teacher-model {path} has no score output (named 'score' or shaped [N] / [N, 1]; it has {found})")
    heat = next((o for o in outputs if o.name == "heatmap"), None) or next(
        (o for o in outputs if len(o.shape) == 4 and o.shape[1] == 1), None
    )
    return score, heat


def _unit_maps(maps: np.ndarray) -> np.ndarray:
    """Non-negative maps ``[N, h, w]`` scaled to sum to 1 (all-zero ones stay zero)."""
    maps = np.clip(np.nan_to_num(maps), 0, None)
    total = maps.sum(axis=(1, 2), keepdims=True)
    return np.where(total > 0, maps / np.maximum(total, 1e-12), 0).astype(np.float32)


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:200]
