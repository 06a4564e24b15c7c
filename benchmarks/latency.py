"""Side-by-side latency of every (model, backend, precision, batch) row, measured in one run.

Rows: the student and teacher in PyTorch (checkpoints named by the bundle), the student's ONNX
models on ONNX Runtime and TensorRT through the runtime backends, and ResMem (a published
memorability model, ``pip install resmem``) where it is installed. Rows that cannot run here are
kept with the reason. All runnable rows are timed round-robin (:func:`time_interleaved`), so the
ratios between them come from the same conditions.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from memgaze.bench.machine import describe_machine, library_versions, machine_line
from memgaze.bench.report import Block, Bullets, Figure, Heading, Para, Table, plot_latency_bars
from memgaze.bench.timing import fps, summarize, time_interleaved
from memgaze.console import console
from memgaze.errors import MemgazeError, fail
from memgaze.manifest import Manifest
from memgaze.precision import PRECISIONS, REDUCED, REFERENCE, check_precision

BACKENDS = ("torch", "onnxruntime", "tensorrt")
ROW_PRECISIONS = PRECISIONS[::-1]  # rows from the FP32 reference to the fastest
MODELS = ("student", "teacher", "resmem")
SEED = 0

Runner = Callable[[], object]


@dataclass(frozen=True)
class Spec:
    """One latency row to measure."""

    model: str  # student | teacher | resmem
    backend: str  # torch | onnxruntime | tensorrt
    precision: str  # fp32 | fp16 | int8
    batch: int
    bundle: int = 0  # index of the bundle whose student this row runs (0 = --model, then each --compare)

    @property
    def label(self) -> str:
        return f"{self.model}{f' #{self.bundle}' if self.bundle else ''} · {self.backend} {self.precision} · b{self.batch}"


def plan(backends: list[str], precisions: list[str], batches: list[int], models: list[str] = list(MODELS),
         bundles: int = 1) -> list[Spec]:
    """Every row asked for: torch runs the student, teacher and ResMem; the engines run the student.
    With ``bundles`` > 1, the students of the other bundles get the same student rows."""
    specs = []
    for batch in batches:
        for backend in backends:
            for model in [m for m in MODELS if m in models and (backend == "torch" or m == "student")]:
                for precision in precisions:
                    if model == "resmem" and precision != "fp32":
                        continue
                    for index in range(bundles if model == "student" else 1):
                        specs.append(Spec(model, backend, precision, batch, index))
    return specs


def random_frames(batch: int, size: tuple[int, int], seed: int = SEED) -> np.ndarray:
    """Random uint8 BGR frames ``[batch, H, W, 3]`` from a fixed seed."""
    return np.random.default_rng(seed).integers(0, 256, (batch, *size, 3), dtype=np.uint8)


class RowOpener:
    """Opens (and caches) what each row needs; returns a runner, or the reason it cannot run."""

    def __init__(self, bundle: Path, threads: int | None, checkpoints: Path | None) -> None:
        from memgaze.runtime.bundle import load_bundle

        self.bundle = load_bundle(bundle)
        self.threads = threads
        self.checkpoints = checkpoints
        self._cache: dict[tuple[str, str, str], Any] = {}
        self.details: dict[tuple[str, str, str], str] = {}  # what actually ran each row (provider, device)
        self.files: dict[tuple[str, str, str], str] = {}  # the bundle file an engine row loaded
        self._closers: list[Callable[[], None]] = []

    @property
    def input_size(self) -> tuple[int, int]:
        return self.bundle.input_size

    def open(self, spec: Spec, frames: np.ndarray) -> Runner:
        """A callable running ``spec`` once on ``frames``; raises MemgazeError with the skip reason."""
        users = np.zeros(len(frames), np.int64) if self.bundle.personalized else None
        key = (spec.model, spec.backend, spec.precision)
        if key not in self._cache:
            try:
                self._cache[key] = self._load(spec)
            except MemgazeError as exc:  # remembered, so other batch sizes skip without retrying
                self._cache[key] = exc
        handle = self._cache[key]
        if isinstance(handle, MemgazeError):
            raise handle
        if spec.backend == "torch":
            return handle(frames)
        return lambda: handle.infer(frames, users)

    def _load(self, spec: Spec) -> Any:
        if spec.backend == "torch":
            return self._load_torch(spec)
        if spec.backend == "tensorrt" and library_versions()["tensorrt"] is None:
            from memgaze.runtime.backends.tensorrt_backend import build_command

            fail("TensorRT is not installed on this machine (it needs an NVIDIA GPU); on one, build the plan with "
                 f"{build_command(self.bundle, spec.precision)}")
        if spec.backend == "onnxruntime" and spec.precision not in self.bundle.onnx_precisions:
            have = ", ".join(self.bundle.onnx_precisions)
            fail(f"the bundle has no {spec.precision} ONNX model (it has {have}); {spec.precision} is built by TensorRT")
        from memgaze.runtime.backends import open_backend

        backend = open_backend(self.bundle, spec.backend, spec.precision, threads=self.threads)
        self._closers.append(backend.close)
        key = (spec.model, spec.backend, spec.precision)
        self.details[key] = backend.describe()
        file = getattr(backend, "model_file", None)  # TensorRT rows name their plan in runs_on
        if file:
            self.files[key] = file
        return backend

    def _load_torch(self, spec: Spec) -> Callable[[np.ndarray], Runner]:
        import torch

        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        if spec.precision == "int8":
            fail("PyTorch rows run fp32/fp16 only; INT8 is measured on ONNX Runtime and TensorRT")
        if spec.precision == "fp16" and device.type != "cuda":
            fail("fp16 in PyTorch needs a CUDA GPU (none here)")
        if self.threads:
            torch.set_num_threads(self.threads)
        self.details[(spec.model, spec.backend, spec.precision)] = f"torch {torch.__version__} on {device.type}"
        if spec.model == "resmem":
            return resmem_runner(device, spec.precision == "fp16")
        path = find_checkpoint(spec.model, self.bundle.manifest, self.bundle.root, self.checkpoints)
        return checkpoint_runner(path, spec.model, device, spec.precision == "fp16")

    def close(self) -> None:
        for close in self._closers:
            close()


def source_checkpoint(manifest: Manifest, bundle: Path) -> Path | None:
    """The bundle's ``source_checkpoint`` file (as written: relative to the export's working
    folder, else to the bundle), or None when the manifest names none or it is gone."""
    source = manifest.source_checkpoint.get("path")
    if not source:
        return None
    for path in (Path(source), bundle / source, bundle.parent / Path(source).name):
        if path.is_file():
            return path
    return None


def find_checkpoint(kind: str, manifest: Manifest, bundle: Path, checkpoints: Path | None) -> Path:
    """``<kind>.safetensors`` in ``checkpoints``; else the bundle's source checkpoint (student) or
    ``teacher.safetensors`` beside it."""
    from memgaze.train.checkpoint import run_checkpoint

    if checkpoints is None:
        source = source_checkpoint(manifest, bundle)
        if source is None:
            fail("the bundle's source_checkpoint is not found here; pass --checkpoints DIR")
        if kind == "student":
            return source
        checkpoints = source.parent
    path = run_checkpoint(checkpoints, kind)
    if not path.is_file():
        fail(f"no {kind} checkpoint at {path} (pass --checkpoints DIR holding {path.name})")
    return path


def _torch_runner(module: Any, call: Callable[[Any, Any], Any], mean: list[float], std: list[float],
                  device: Any, half: bool, size: int | None = None) -> Callable[[np.ndarray], Runner]:
    """Runner factory for a torch model fed uint8 BGR frames; the preprocessing (BGR→RGB, scaling,
    mean/std, optional resize to ``size``) runs on ``device`` inside the timed call, as in the ONNX graph."""
    import torch
    import torch.nn.functional as F

    module.to(device).eval()
    if half:
        module.half()
    mean_t = torch.tensor(mean, device=device).view(1, 3, 1, 1) * 255
    std_t = torch.tensor(std, device=device).view(1, 3, 1, 1) * 255

    def factory(frames: np.ndarray) -> Runner:
        users = torch.zeros(len(frames), dtype=torch.int64, device=device)

        def run() -> list[Any]:
            with torch.inference_mode():
                x = torch.from_numpy(frames).to(device).flip(-1).permute(0, 3, 1, 2).float()
                x = ((x - mean_t) / std_t).contiguous()
                if size is not None:
                    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
                out = call(x.half() if half else x, users)
                return [o.float().cpu() for o in (out if isinstance(out, tuple) else (out,))]

        return run

    return factory


def checkpoint_runner(path: Path, kind: str, device: Any, half: bool) -> Callable[[np.ndarray], Runner]:
    """Runner factory for a memgaze teacher/student checkpoint (score + softmax heatmap, as exported)."""
    from memgaze.train.checkpoint import load_checkpoint
    from memgaze.train.models import to_heatmap

    model, config = load_checkpoint(path, expect_kind=kind)

    def call(x: Any, users: Any) -> Any:
        score, logits = model(x, users)
        return score, to_heatmap(logits)

    norm = config["normalization"]
    return _torch_runner(model, call, norm["mean"], norm["std"], device, half)


def resmem_runner(device: Any, half: bool) -> Callable[[np.ndarray], Runner]:
    """Runner factory for ResMem (PyPI ``resmem``, whose weights ship inside the wheel)."""
    from memgaze.train.label_free.resmem import RESMEM_SIZE, load_resmem

    model = load_resmem()
    # ResMem takes RGB in [0, 1] at 227×227 (mean 0, std 1 in 0–1 units).
    return _torch_runner(model, lambda x, _users: model(x), [0.0] * 3, [1.0] * 3, device, half, RESMEM_SIZE)


def run_latency(
    bundle: Path,
    backends: list[str],
    precisions: list[str],
    batches: list[int],
    iters: int = 100,
    warmup: int = 10,
    rounds: int = 5,
    threads: int | None = None,
    checkpoints: Path | None = None,
    models: list[str] = list(MODELS),
    compare: list[Path] | None = None,
) -> dict[str, Any]:
    """Measure every planned row round-robin; the ``latency.json`` document (see README). ``compare``:
    more bundles (e.g. another student backbone, at its own input size) whose student rows are measured in the
    same run; each bundle is fed frames of its own input size."""
    for name in backends:
        if name not in BACKENDS:
            fail(f"unknown backend {name!r} (choose from {', '.join(BACKENDS)})")
    for name in models:
        if name not in MODELS:
            fail(f"unknown model {name!r} (choose from {', '.join(MODELS)})")
    for name in precisions:
        check_precision(name)
    if any(b < 1 for b in batches) or iters < 1 or warmup < 0:
        fail("--batch values and --iters must be >= 1, --warmup >= 0")
    openers = [RowOpener(bundle, threads, checkpoints), *(RowOpener(b, threads, None) for b in compare or [])]
    opener = openers[0]
    students = [student_summary(o) for o in openers]
    runners: dict[Spec, Runner] = {}
    skipped: list[dict[str, Any]] = []
    try:
        for spec in plan(backends, precisions, batches, models, len(openers)):
            frames = random_frames(spec.batch, openers[spec.bundle].input_size)
            try:
                runners[spec] = openers[spec.bundle].open(spec, frames)
            except MemgazeError as exc:
                skipped.append({**asdict(spec), "reason": str(exc)})
                console.print(f"[dim]skip {spec.label}: {exc}[/dim]")
        if not runners:
            fail("no latency row can run here: " + "; ".join(f"{s['model']} {s['backend']} {s['precision']}: {s['reason']}" for s in skipped))
        console.print(f"timing {len(runners)} rows × {iters} iterations ({warmup} warm-up, {rounds} rounds, interleaved)")
        samples = time_interleaved(runners, iters=iters, warmup=warmup, rounds=rounds)
    finally:
        for each in openers:
            each.close()
    rows = []
    for spec, times in samples.items():
        stats = summarize(times)
        key = (spec.model, spec.backend, spec.precision)
        row_opener = openers[spec.bundle]
        backbone = students[spec.bundle]["backbone"] if spec.model == "student" else None
        rows.append({**asdict(spec), "backbone": backbone, **stats, "fps": fps(spec.batch, stats["mean_ms"]),
                     "threads": threads, "iters": iters, "runs_on": row_opener.details.get(key),
                     "file": row_opener.files.get(key)})
    return {
        "machine": describe_machine(),
        "students": students,
        "rows": rows,
        "skipped": skipped,
        "ratios": ratios(rows),
        "settings": {
            "bundle": str(bundle),
            "input_size": list(opener.input_size),
            "iters": iters,
            "warmup": warmup,
            "rounds": rounds,
            "threads": threads,
            "seed": SEED,
        },
    }


def student_summary(opener: RowOpener) -> dict[str, Any]:
    """Backbone, parameters and MACs of a bundle's student, from its source checkpoint (None where it is gone)."""
    summary: dict[str, Any] = {"bundle": str(opener.bundle.root), "input_size": list(opener.input_size), "backbone": None,
                               "params": None, "macs": None}
    path = source_checkpoint(opener.bundle.manifest, opener.bundle.root)
    if path is None:
        return summary
    from memgaze.train.checkpoint import load_checkpoint
    from memgaze.train.models import count_macs, count_params
    from memgaze.train.models.backbones import LEGACY_BACKBONE

    model, config = load_checkpoint(path, expect_kind="student")
    summary.update(backbone=config["architecture"].get("backbone", LEGACY_BACKBONE), params=count_params(model),
                   macs=count_macs(model, opener.input_size))
    return summary


def _find(rows: list[dict[str, Any]], **match: Any) -> dict[str, Any] | None:
    match.setdefault("bundle", 0)
    return next((r for r in rows if all(r.get(k, 0) == v for k, v in match.items())), None)


def ratios(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Speed-ups between rows of the same batch: ``speedup = mean_ms(baseline) / mean_ms(candidate)``."""
    out = []

    def add(what: str, candidate: dict[str, Any] | None, baseline: dict[str, Any] | None) -> None:
        if candidate and baseline:
            out.append({
                "comparison": what,
                "batch": candidate["batch"],
                "candidate": _row_name(candidate),
                "baseline": _row_name(baseline),
                "speedup": baseline["mean_ms"] / candidate["mean_ms"],
            })

    for batch in sorted({r["batch"] for r in rows}):
        for p in ROW_PRECISIONS:
            add("student vs teacher", _find(rows, model="student", backend="torch", precision=p, batch=batch),
                _find(rows, model="teacher", backend="torch", precision=p, batch=batch))
        for index in sorted({r.get("bundle", 0) for r in rows}):
            for b in ("onnxruntime", "tensorrt"):
                for low in REDUCED:
                    add(f"{low.upper()} vs {REFERENCE.upper()}",
                        _find(rows, model="student", backend=b, precision=low, batch=batch, bundle=index),
                        _find(rows, model="student", backend=b, precision=REFERENCE, batch=batch, bundle=index))
            if index:
                for b in ("torch", "onnxruntime"):
                    for p in ("fp32", "int8"):
                        add("student vs other student",
                            _find(rows, model="student", backend=b, precision=p, batch=batch),
                            _find(rows, model="student", backend=b, precision=p, batch=batch, bundle=index))
        for p in ROW_PRECISIONS:
            add("TensorRT vs ONNX Runtime", _find(rows, model="student", backend="tensorrt", precision=p, batch=batch),
                _find(rows, model="student", backend="onnxruntime", precision=p, batch=batch))
        resmem = _find(rows, model="resmem", batch=batch)
        add("student vs ResMem", _find(rows, model="student", backend="torch", precision="fp32", batch=batch), resmem)
        for p in REDUCED:
            add("deployed student vs ResMem", _find(rows, model="student", backend="onnxruntime", precision=p, batch=batch)
                or _find(rows, model="student", backend="tensorrt", precision=p, batch=batch), resmem)
    return out


def _row_name(row: dict[str, Any]) -> str:
    backbone = f" ({row['backbone']})" if row.get("backbone") else ""
    return f"{row['model']}{backbone} {row['backend']} {row['precision']}"


def load_result(path: Path) -> dict[str, Any] | None:
    """A ``latency.json`` written earlier, or None when absent."""
    return json.loads(path.read_text()) if path.is_file() else None


def section(result: dict[str, Any], folder: Path) -> list[Block]:
    """Report blocks for a latency result; writes ``latency.png`` into ``folder``."""
    rows = sorted(result["rows"], key=lambda r: (r["batch"], r["mean_ms"]))
    s = result["settings"]
    blocks: list[Block] = [
        Heading("Latency"),
        Para(
            f"Bundle {s['bundle']} at {s['input_size'][0]}×{s['input_size'][1]}, random uint8 BGR frames "
            f"(seed {s['seed']}); {s['iters']} timed calls per row after {s['warmup']} warm-up calls, "
            f"interleaved round-robin over {s['rounds']} rounds; threads: {s['threads'] or 'library default'}. "
            "A call includes preprocessing (uint8 BGR → normalized tensor) and reading back score and heatmap."
        ),
        Table(
            ["model", "backend", "precision", "file", "batch", "p50 ms", "p90 ms", "p99 ms", "mean ms", "std ms", "FPS"],
            [[_row_name(r).rsplit(" ", 2)[0], r["backend"], r["precision"], r.get("file"), r["batch"], r["p50_ms"],
              r["p90_ms"], r["p99_ms"], r["mean_ms"], r["std_ms"], r["fps"]] for r in rows],
        ),
    ]
    if result.get("students"):
        blocks += [
            Heading("Students", 3),
            Table(["backbone", "bundle", "input", "parameters", "MACs (G)"],
                  [[t["backbone"], t["bundle"], "x".join(map(str, t.get("input_size") or s["input_size"])), t["params"],
                    None if t["macs"] is None else t["macs"] / 1e9] for t in result["students"]]),
        ]
    if result["ratios"]:
        blocks += [
            Heading("Ratios (same run)", 3),
            Table(["comparison", "batch", "candidate", "baseline", "speed-up ×"],
                  [[q["comparison"], q["batch"], q["candidate"], q["baseline"], q["speedup"]] for q in result["ratios"]]),
            Para("speed-up = mean latency of the baseline / mean latency of the candidate (> 1: the candidate is faster)."),
        ]
    if rows:
        plot_latency_bars([f"{_row_name(r)} b{r['batch']}" for r in rows],
                          [r["p50_ms"] for r in rows], [r["p99_ms"] for r in rows], folder / "latency.png",
                          "Latency per call: bar = p50, whisker = p99")
        blocks.append(Figure("latency.png", "Latency per call (bar p50, whisker to p99)"))
    slower = [q for q in result["ratios"] if q["comparison"] == "INT8 vs FP32" and q["speedup"] < 1]
    if slower:
        factors = ", ".join("batch {}: ×{:.2f}".format(q["batch"], q["speedup"]) for q in slower)
        blocks.append(Para(
            f"INT8 is slower than FP32 here ({factors}); see benchmarks/README.md, 'INT8 on a CPU', for "
            "why and for which INT8 file ONNX Runtime runs on a CPU."))
    blocks.append(Heading("Skipped rows", 3))
    if result["skipped"]:
        grouped: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
        for k in result["skipped"]:
            grouped.setdefault((k["model"], k["backend"], k["reason"]), []).append(k)
        items = []
        for (model, backend, reason), group in grouped.items():
            precisions = "/".join(dict.fromkeys(k["precision"] for k in group))
            batches = ", ".join(f"b{b}" for b in dict.fromkeys(k["batch"] for k in group))
            items.append(f"{model} · {backend} {precisions} · {batches}: {reason}")
        blocks.append(Bullets(items))
    else:
        blocks.append(Para("None: every requested row ran."))
    return blocks


def summary_line(result: dict[str, Any]) -> str:
    """One console line per result: machine and row count."""
    return f"{len(result['rows'])} rows measured, {len(result['skipped'])} skipped on {machine_line(result['machine'])}"
