"""``memgaze-export``: checkpoint → verified ONNX → calibrated INT8 Q/DQ ONNX → TensorRT plan, as a deploy bundle."""

from __future__ import annotations

import time
from enum import Enum
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import typer
from rich.table import Table

from memgaze.console import WarningCounter, console
from memgaze.errors import fail, run_cli
from memgaze.export.bundle import CACHE_NAME, FP32_NAME, INT8_NAME, ORT_CPU_INT8_NAME, bundle_dir, check_output, human_size, manifest, sizes
from memgaze.export.calibration import DEFAULT_COUNT, MIN_FRAMES, CalibrationSet, FrameReader, load_calibration
from memgaze.export.eval_data import ground_truth_scores
from memgaze.export.graph import GraphSpec, is_personalized
from memgaze.export.onnx_export import DEFAULT_OPSET, export_onnx
from memgaze.export.quantize import ONNXRUNTIME_CPU, TENSORRT, QuantizeResult, Scheme, quantize_int8
from memgaze.export.trt_compat import TARGETS, require_parseable
from memgaze.export.trt_cache import DEFAULT_TRT_VERSION, write_calibration_cache
from memgaze.export.verify import inference_session, run_onnx, user_indices, verification_images, verify_onnx
from memgaze.gate import MIN_SAMPLES, AccuracyReport, compare_outputs, enforce_gate
from memgaze.gate_samples import SAMPLE_COUNT, SAMPLES_NAME, Samples, write_samples
from memgaze.manifest import EngineEntry, GateSamples, write_manifest
from memgaze.trt.probe import tensorrt_module
from memgaze.version import version_option

app = typer.Typer(add_completion=False, help=__doc__, pretty_exceptions_enable=False)
# Every INT8 model the export writes: the TensorRT Q/DQ model (manifest ``models``) and the ONNX
# Runtime CPU one (manifest ``onnxruntime_cpu``); both pass the same accuracy gate.
INT8_MODELS: dict[str, Scheme] = {INT8_NAME: TENSORRT, ORT_CPU_INT8_NAME: ONNXRUNTIME_CPU}
NOTES = {
    FP32_NAME: "FP32, verified against PyTorch", INT8_NAME: "INT8 Q/DQ for TensorRT",
    ORT_CPU_INT8_NAME: "INT8 U8S8 Q/DQ for ONNX Runtime CPU", CACHE_NAME: "TensorRT calibration cache",
    SAMPLES_NAME: "held-out frames + FP32 outputs, to check a TensorRT plan on the device",
}


class Method(str, Enum):
    entropy = "entropy"
    percentile = "percentile"
    minmax = "minmax"


def newest_student(root: Path = Path("runs")) -> Path:
    """The most recently written student checkpoint (``memgaze-train``'s ``OUT/student.safetensors``) under ``root``."""
    from memgaze.train.checkpoint import run_checkpoint

    name = run_checkpoint(Path(), "student").name
    found = sorted(root.rglob(name), key=lambda p: p.stat().st_mtime) if root.is_dir() else []
    if not found:
        fail(f"no --checkpoint given and no {name} under {root}/ (train one with memgaze-train)")
    console.print(f"using the newest student checkpoint: [bold]{found[-1]}[/bold]")
    return found[-1]


def load_student(path: Path) -> tuple[Any, dict[str, Any]]:
    """The student model and its config (one-line errors for missing/foreign/teacher files)."""
    from memgaze.train.checkpoint import load_checkpoint

    model, config = load_checkpoint(path, expect_kind="student")
    return model.eval(), dict(config)


def step(message: str, started: float) -> None:
    console.print(f"[green]✓[/green] {message} [dim]({time.monotonic() - started:.1f} s)[/dim]")


def summary_table(folder: Path, out: Path, reports: dict[str, AccuracyReport], engines: list[EngineEntry]) -> Table:
    table = Table(title=f"memgaze-export → {out}", title_justify="left")
    for column in ("file", "size", "notes"):
        table.add_column(column)
    notes = dict(NOTES)
    for name, report in reports.items():
        notes[name] += f", ρ vs FP32 {report.spearman:.4f}, heatmap CC {report.heatmap_cc:.4f}"
    notes.update({e.file: f"TensorRT {e.tensorrt} {e.precision} on {e.gpu} (sm {e.compute_capability})" for e in engines})
    for name, size in sizes(folder).items():
        table.add_row(name, human_size(size), notes.get(name, ""))
    return table


@app.command()
def export(
    checkpoint: Optional[Path] = typer.Option(None, help="student checkpoint (.safetensors); default: newest under runs/"),
    out: Path = typer.Option(Path("deploy"), help="bundle folder to write"),
    int8: bool = typer.Option(False, "--int8", help="also write the calibrated INT8 Q/DQ model"),
    fp16: bool = typer.Option(False, "--fp16", help="without --int8: build an FP16 TensorRT plan (TensorRT 8.6 and 10.x)"),
    calib: Path = typer.Option(Path("calib_data"), help="folder of calibration images and/or videos"),
    calib_count: int = typer.Option(DEFAULT_COUNT, help="calibration frames to use"),
    calib_method: Method = typer.Option(Method.minmax, help="activation range calibration (entropy: KL over a 2048-bin histogram)"),
    min_calib: int = typer.Option(MIN_FRAMES, help="refuse fewer calibration frames than this", hidden=True),
    image_size: Optional[int] = typer.Option(None, help="square input size, a multiple of 32 (default: the checkpoint's)"),
    engine: bool = typer.Option(True, "--engine/--no-engine", help="build the TensorRT plan where TensorRT is installed"),
    workspace: float = typer.Option(2.0, help="TensorRT builder workspace, GB"),
    dla_core: Optional[int] = typer.Option(None, help="build for this DLA core (Jetson): static batch 1, GPU fallback"),
    opset: int = typer.Option(DEFAULT_OPSET, help="ONNX opset"),
    eval_data: Optional[Path] = typer.Option(None, help="LaMem-layout dataset: also score FP32/INT8 against its test split"),
    allow_degraded: bool = typer.Option(False, "--allow-degraded", help="keep an INT8 model that fails the accuracy gate"),
    version: bool = version_option(),
) -> None:
    """Export a student checkpoint to a deploy bundle (ONNX, INT8 Q/DQ ONNX, TensorRT plan)."""
    started = time.monotonic()
    checkpoint = checkpoint or newest_student()
    check_output(out)
    model, config = load_student(checkpoint)
    spec = GraphSpec.from_config(config, image_size)
    config = spec.model_config(config)
    size = spec.input_size
    calibration: CalibrationSet | None = None
    if int8:
        with console.status(f"reading calibration frames from {calib}"):
            calibration = load_calibration(calib, size, calib_count, warnings=WarningCounter("calibration"), min_frames=min_calib)
        step(f"{len(calibration.frames)} calibration frames, {len(calibration.held_out)} held out, from {calib}", started)
    elif calib.is_dir():
        calibration = load_calibration(calib, size, calib_count, warnings=WarningCounter("calibration"), min_frames=0)

    with bundle_dir(out) as folder:
        fp32 = folder / FP32_NAME
        with console.status("exporting ONNX"):
            export_onnx(model, config, fp32, opset, spec)
        step(f"ONNX opset {opset}, checked and simplified → {FP32_NAME}", started)
        parser_checks = {FP32_NAME: require_parseable(fp32)}
        frames = None if calibration is None else np.concatenate([calibration.frames, calibration.held_out])
        with console.status("verifying ONNX Runtime against PyTorch"):
            verified = verify_onnx(model, config, fp32, verification_images(frames, size))
        step(f"ONNX Runtime matches PyTorch on {verified.images} images (max |Δscore| {verified.max_abs_score_diff:.1e}, min heatmap CC {verified.heatmap_cc_min:.6f})", started)

        models, cpu_models = {"fp32": FP32_NAME}, {}
        reports: dict[str, AccuracyReport] = {}
        calib_summary: dict[str, Any] | None = None
        extra: dict[str, Any] = {"opset": opset, "verification": verified.as_dict()}
        if calibration is not None and int8:
            reports, calib_summary = _quantize(folder, fp32, config, calibration, calib_method.value, allow_degraded, eval_data, size)
            models["int8"], cpu_models["int8"] = INT8_NAME, ORT_CPU_INT8_NAME
            parser_checks[INT8_NAME] = require_parseable(folder / INT8_NAME)
            extra["accuracy_onnxruntime_cpu"] = reports[ORT_CPU_INT8_NAME].as_dict()
            for name, report in reports.items():
                step(f"{name} ({calib_method.value}): Spearman vs FP32 {report.spearman:.4f}, heatmap CC {report.heatmap_cc:.4f} on {report.images} {report.source}", started)
        step(f"{' and '.join(parser_checks)} pass TensorRT {', '.join(TARGETS[v].name for v in TARGETS)}'s documented "
             "ONNX parser rules", started)
        gate_samples = _gate_samples(folder, fp32, config, calibration, size)
        write_manifest(folder, manifest(
            folder, spec, checkpoint, models=models, cpu_models=cpu_models,
            calibration=calib_summary, accuracy=reports[INT8_NAME].as_dict() if reports else None,
            gate_samples=gate_samples, tensorrt_check=parser_checks, extra=extra,
        ))
    engines = _engine(out, "int8" if int8 else ("fp16" if fp16 else "fp32"), engine, workspace, dla_core, allow_degraded)
    console.print(summary_table(out, out, reports, engines))
    console.print(f"bundle written to [bold]{out}[/bold] in {time.monotonic() - started:.1f} s")


def _gate_samples(folder: Path, fp32: Path, config: dict[str, Any], calibration: CalibrationSet | None, size: tuple[int, int]) -> GateSamples:
    """:data:`SAMPLE_COUNT` real frames (held-out first) with their FP32 outputs; seeded noise only without any frame."""
    if calibration is not None and len(calibration.frames):
        frames, source = calibration.judging_frames(SAMPLE_COUNT, exactly=True)
    else:
        frames, source = verification_images(None, size, SAMPLE_COUNT), "seeded noise (no calibration frames were given)"
    if len(frames) < SAMPLE_COUNT:
        console.print(f"[yellow]warning:[/yellow] only {len(frames)} gate samples (the gate is set for {SAMPLE_COUNT}): "
                      "give --calib a folder with more frames for a trustworthy check on the device", soft_wrap=True)
    users = user_indices(config, len(frames))
    scores, heatmaps = run_onnx(inference_session(fp32), frames, users)
    return write_samples(folder, Samples(frames=frames, users=users, scores=scores, heatmaps=heatmaps), source)


def _quantize(
    folder: Path, fp32: Path, config: dict[str, Any], calibration: CalibrationSet, method: str,
    allow_degraded: bool, eval_data: Path | None, size: tuple[int, int],
) -> tuple[dict[str, AccuracyReport], dict[str, Any]]:
    """Both INT8 models + calibration cache + accuracy gates; returns the reports by file and the calibration summary."""
    held, source = calibration.judging_frames(MIN_SAMPLES)
    held_users = user_indices(config, len(held))
    reference = run_onnx(inference_session(fp32), held, held_users)
    reader = FrameReader(calibration.frames, user_indices(config, len(calibration.frames)))

    def evaluator(exact_qdq: bool) -> Callable[[Path], AccuracyReport]:
        where = f"{source}, exact Q/DQ emulation" if exact_qdq else source
        return lambda candidate: compare_outputs(reference, run_onnx(inference_session(candidate, exact_qdq=exact_qdq), held, held_users), where)

    results: dict[str, QuantizeResult] = {}
    for name, scheme in INT8_MODELS.items():
        with console.status(f"calibrating and quantizing {name} ({scheme.name}, {method}, {len(calibration.frames)} frames)"):
            results[name] = result = quantize_int8(fp32, folder / name, reader, evaluator(scheme.exact_qdq), method, scheme)
        if result.kept_float:
            console.print(f"sensitivity pass kept {len(result.kept_float)} layer(s) of {name} in float: {', '.join(result.kept_float)}")
        if eval_data is not None:
            result.report.ground_truth = ground_truth_scores(eval_data, size, fp32, folder / name, is_personalized(config))
        enforce_gate(result.report, f"INT8 model {name}", allow_degraded, "calibrate with more or more representative frames")
    trt_version = str(getattr(tensorrt_module(), "__version__", DEFAULT_TRT_VERSION))
    tensors = write_calibration_cache(folder / INT8_NAME, folder / CACHE_NAME, trt_version)
    summary = {
        **calibration.summary, **results[INT8_NAME].summary(method), "cache_tensors": tensors, "cache_tensorrt": trt_version,
        "onnxruntime_cpu": results[ORT_CPU_INT8_NAME].summary(method),
    }
    return {name: result.report for name, result in results.items()}, summary


def _engine(out: Path, precision: str, engine: bool, workspace: float, dla_core: int | None, allow_degraded: bool) -> list[EngineEntry]:
    """Build, check and register the plan where TensorRT imports (memgaze-engine's code); else say how to on the device."""
    if not engine:
        return []
    if tensorrt_module() is None:
        console.print(
            f"TensorRT is not installed here; on the device, run [bold]memgaze-engine {out}[/bold] (it builds, checks and "
            f"registers the plan), or print its trtexec command with: memgaze-engine {out} --print-trtexec --trt-version X.Y",
            soft_wrap=True,
        )
        return []
    from memgaze.runtime.engines import BuildRequest, ensure_plan

    request = BuildRequest(precision=precision, dla_core=dla_core, workspace_gb=workspace, allow_degraded=allow_degraded)
    return [ensure_plan(out, request)]


def main() -> None:
    """Console entry point."""
    run_cli(app)
