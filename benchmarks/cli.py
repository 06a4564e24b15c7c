"""``memgaze-bench``: latency, accuracy and training-speed benchmarks with JSON/Markdown/HTML reports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

from memgaze.atomic import write_json
from memgaze.builtin import resolve
from memgaze.console import console
from memgaze.errors import fail, run_cli
from memgaze.train.cli import bracket, shown
from memgaze.train.config import EPOCHS, IMAGE_SIZE
from memgaze.version import version_option

app = typer.Typer(
    add_completion=False,
    pretty_exceptions_enable=False,
    no_args_is_help=True,
    help="Benchmark memgaze: latency side by side, accuracy per precision, training speed. "
    "Every command writes <kind>.json, report.md, PNG plots and a self-contained report.html into --out.",
)

@app.callback()
def _version(version: bool = version_option()) -> None:
    """Benchmark memgaze (``--version`` answers before any command)."""


MODEL_HELP = r"Deploy bundle folder (memgaze-export), or a built-in model's name \[the built-in model]."


def _csv(text: str, what: str) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        fail(f"--{what} is empty")
    return items


def _ints(text: str, what: str) -> list[int]:
    try:
        return [int(t) for t in _csv(text, what)]
    except ValueError:
        fail(f"--{what} takes comma-separated integers, got {text!r}")


def write_report(folder: Path) -> Path:
    """Rebuild ``report.md``/``report.html`` (and plots) in ``folder`` from every result JSON there."""
    from memgaze.bench import (accuracy, agreement, collection, gate, lamem_report, latency, personalization, photos, pipeline,
                               resize, train_speed)
    from memgaze.bench.machine import machine_line
    from memgaze.bench.report import Document, write_documents

    sections = {
        "latency.json": latency.section, "pipeline.json": pipeline.section, "resize.json": resize.section, "photos.json": photos.section,
        "accuracy.json": accuracy.section, "agreement.json": agreement.section, "gate.json": gate.section,
        "train.json": train_speed.section, "lamem.json": lamem_report.section, "personalization.json": personalization.section,
        "collection.json": collection.section,
    }
    results: dict[str, dict[str, Any]] = {}
    for name in sections:  # the report's order
        path = folder / name
        if path.is_file():
            try:
                results[name] = json.loads(path.read_text())
            except json.JSONDecodeError as exc:
                fail(f"{path} is not valid JSON: {exc}")
    if not results:
        fail(f"{folder} holds no benchmark result ({', '.join(sections)})")
    machine = next(iter(results.values()))["machine"]
    doc = Document("memgaze benchmarks", machine_line(machine))
    for name, result in results.items():
        doc.blocks += sections[name](result, folder)
    _, page = write_documents(doc, folder)
    return page


def _finish(folder: Path, name: str, result: dict[str, Any]) -> None:
    write_json(folder / name, result)
    page = write_report(folder)
    console.print(f"wrote {folder / name}, {folder / 'report.md'} and {page}")


@app.command()
def latency(
    model: Optional[Path] = typer.Option(None, "--model", help=MODEL_HELP),
    backends: str = typer.Option("torch,onnxruntime,tensorrt", help="Comma list: torch, onnxruntime, tensorrt."),
    precisions: str = typer.Option("fp32,fp16,int8", help="Comma list: fp32, fp16, int8."),
    models: str = typer.Option("student,teacher,resmem", help="Comma list: student, teacher, resmem (the last two run in PyTorch only)."),
    batch: str = typer.Option("1,8", help="Comma list of batch sizes."),
    iters: int = typer.Option(100, help="Timed calls per row."),
    warmup: int = typer.Option(10, help="Untimed calls per row first."),
    rounds: int = typer.Option(5, help="Round-robin rounds the timed calls are split into."),
    threads: Optional[int] = typer.Option(None, help="CPU threads for torch and ONNX Runtime (default: library default)."),
    checkpoints: Optional[Path] = typer.Option(
        None, help="Folder with student.safetensors/teacher.safetensors (default: beside the bundle's source checkpoint)."
    ),
    compare: Optional[list[Path]] = typer.Option(
        None, "--compare", help="Another bundle (e.g. another student backbone, fed frames of its own input size) whose student rows run in the same round-robin. Repeatable."
    ),
    out: Path = typer.Option(Path("runs/bench"), help="Output folder."),
) -> None:
    """Latency side by side: teacher vs student (PyTorch), FP32 vs INT8 (ONNX Runtime), TensorRT, ResMem, other students."""
    from memgaze.bench.latency import run_latency, summary_line

    result = run_latency(resolve(model), _csv(backends, "backends"), _csv(precisions, "precisions"), _ints(batch, "batch"),
                         iters=iters, warmup=warmup, rounds=rounds, threads=threads, checkpoints=checkpoints,
                         models=_csv(models, "models"), compare=compare)
    console.print(summary_line(result))
    _finish(out, "latency.json", result)


def _threads(text: str) -> list[int | None]:
    try:
        return [None if t == "default" else int(t) for t in _csv(text, "threads")]
    except ValueError:
        fail(f"--threads takes comma-separated integers or 'default', got {text!r}")


@app.command()
def pipeline(
    model: Optional[Path] = typer.Option(None, "--model", help=MODEL_HELP),
    source: list[str] = typer.Option(..., "--source", help="Video file or image folder to replay (repeatable)."),
    backend: str = typer.Option("onnxruntime", help="auto, onnxruntime or tensorrt."),
    precision: str = typer.Option("int8", help="int8, fp16 or fp32."),
    threads: str = typer.Option("1,default", help="Comma list of ONNX Runtime intra-op threads settings ('default': library default)."),
    max_frames: Optional[int] = typer.Option(None, help="Stop each throughput run after N frames."),
    repeat: int = typer.Option(3, min=1, help="Rounds per file (pipeline, decode, engine); the median round is reported."),
    iters: int = typer.Option(200, help="Timed calls of the engine alone."),
    warmup: int = typer.Option(10, help="Untimed engine calls first."),
    paced_seconds: float = typer.Option(0.0, "--paced-seconds", help="Also replay the first source at its frame rate for this long (0: skip)."),
    window: float = typer.Option(10.0, help="Paced mode: latency reported per window of this many seconds."),
    multi: str = typer.Option("", help="Comma list of source counts for the multi-source run (e.g. 1,2,4; empty: skip)."),
    out: Path = typer.Option(Path("runs/bench"), help="Output folder."),
) -> None:
    """memgaze-run throughput vs its slowest stage (decode or engine), paced-source latency, multi-source FPS."""
    from memgaze.bench.pipeline import run_pipeline_bench, summary_line

    result = run_pipeline_bench(resolve(model), source, backend, precision, threads=_threads(threads), max_frames=max_frames,
                                iters=iters, warmup=warmup, paced_seconds=paced_seconds, window=window,
                                multi=_ints(multi, "multi") if multi.strip() else None, repeat=repeat)
    console.print(summary_line(result))
    _finish(out, "pipeline.json", result)


@app.command()
def photos(
    model: Optional[Path] = typer.Option(None, "--model", help=MODEL_HELP),
    source: list[str] = typer.Option(..., "--source", help="Folder, glob or list of real photos (repeatable)."),
    batch: int = typer.Option(8, "--batch", min=1, help="Photos per engine call (memgaze-run --batch)."),
    passes: int = typer.Option(4, "--passes", min=1, help="Passes over the photos per measurement (ResMem: one)."),
    rounds: int = typer.Option(3, "--rounds", min=1, help="Interleaved rounds; the median round is reported."),
    precision: str = typer.Option("int8", "--precision", help="int8 or fp32 (ONNX Runtime)."),
    resmem: bool = typer.Option(True, "--resmem/--no-resmem", help="Measure ResMem beside it (pip install resmem)."),
    ray_workers: str = typer.Option("1,2", "--ray-workers", help="Ray Data runs with these numbers of workers ('' to skip; needs memgaze[ray])."),
    ray_passes: int = typer.Option(16, "--ray-passes", min=1, help="Passes over the photos per Ray job (its start-up takes seconds)."),
    out: Path = typer.Option(Path("runs/bench"), help="Output folder."),
) -> None:
    """Photos per second on real photos: decoding alone (the limit), memgaze end to end, ResMem, Ray Data."""
    from memgaze.bench.photos import run_photos_bench, summary_line

    result = run_photos_bench(resolve(model), source, batch=batch, passes=passes, rounds=rounds, precision=precision, resmem=resmem,
                              ray_workers=_ints(ray_workers, "ray-workers") if ray_workers.strip() else None, ray_passes=ray_passes)
    console.print(summary_line(result))
    _finish(out, "photos.json", result)


@app.command()
def collection(
    model: Optional[Path] = typer.Option(None, "--model", help=MODEL_HELP),
    counts: str = typer.Option("1000,10000,50000", "--counts", help="Comma list of collection sizes (photos)."),
    rounds: int = typer.Option(3, "--rounds", min=1, help="Interleaved rounds of the damaged-file check's with/without runs."),
    work: Optional[Path] = typer.Option(None, "--work", help="Folder for the generated photos [a temporary one]."),
    out: Path = typer.Option(Path("runs/bench"), help="Output folder."),
) -> None:
    """Peak memory and photos/s against the number of photos: predict(list), stream(), memgaze-run; the damaged-file check's cost."""
    import tempfile

    from memgaze.bench.collection import run_collection_bench, summary_line

    with tempfile.TemporaryDirectory(prefix="memgaze-bench-collection-") as scratch:
        result = run_collection_bench(model, _ints(counts, "counts"), work or Path(scratch), rounds=rounds)
    console.print(summary_line(result))
    _finish(out, "collection.json", result)


@app.command()
def resize(
    model: Optional[Path] = typer.Option(None, "--model", help=MODEL_HELP),
    video: list[Path] = typer.Option(..., "--video", help="Real video(s) to take frames from (repeatable)."),
    frames: int = typer.Option(10, help="Frames per video."),
    iters: int = typer.Option(100, help="Timed calls per candidate and resolution."),
    precision: str = typer.Option("int8", help="The model judging the candidates (ONNX Runtime): int8 or fp32."),
    out: Path = typer.Option(Path("runs/bench"), help="Output folder."),
) -> None:
    """Resize candidates at 1280×720 and 1920×1080: speed, and the model's output change vs INTER_AREA."""
    from memgaze.bench.resize import run_resize_bench

    _finish(out, "resize.json", run_resize_bench(resolve(model), video, frames_per_video=frames, iters=iters, precision=precision))


@app.command()
def clip(
    source: Path = typer.Option(..., "--source", help="A real video to re-encode."),
    out: Path = typer.Option(..., "--out", help="The clip to write (.mp4)."),
    size: str = typer.Option("1280x720", help="WIDTHxHEIGHT."),
    frames: int = typer.Option(300, help="Frames to keep."),
    fps: float = typer.Option(30.0, help="Frame rate written in the file (the paced mode replays at it)."),
) -> None:
    """Re-encode a real video at a camera resolution (bicubic) for the pipeline benchmark."""
    from memgaze.bench.clips import make_clip

    try:
        width, height = (int(v) for v in size.lower().split("x"))
    except ValueError:
        fail(f"--size takes WIDTHxHEIGHT, got {size!r}")
    console.print(f"wrote {make_clip(source, out, (width, height), frames, fps)}")


@app.command()
def accuracy(
    model: Optional[Path] = typer.Option(None, "--model", help=MODEL_HELP),
    data: str = typer.Option(..., help="Dataset root (LaMem layout) or 'demo' (the synthetic demo dataset)."),
    split: str = typer.Option("test", help="train, val or test."),
    fold: int = typer.Option(1, help="Split number k of splits/<split>_<k>.txt."),
    limit: Optional[int] = typer.Option(None, help="Use at most this many images."),
    out: Path = typer.Option(Path("runs/bench"), help="Output folder (a latency.json there is used for the plot)."),
) -> None:
    """Accuracy of each precision in the bundle (ONNX Runtime) vs ground truth, and INT8-vs-FP32 agreement."""
    from memgaze.bench.accuracy import run_accuracy

    result = run_accuracy(resolve(model), data, split=split, fold=fold, limit=limit, out=out)
    _finish(out, "accuracy.json", result)


@app.command()
def agreement(
    model: Optional[list[str]] = typer.Option(
        None, "--model", help=r"LABEL=BUNDLE (repeatable): deploy bundles (or built-in models' names) to compare \[the built-in model]."
    ),
    data: Optional[Path] = typer.Option(None, "--data", help="Folder with images/ of photos none of the models trained on."),
    reference: str = typer.Option("resmem", "--reference", help="Reference model: 'resmem' or an ONNX file (as --teacher-model)."),
    groups: Optional[Path] = typer.Option(
        None, "--groups", help=r"groups.json: grouping -> photo -> group, for the agreement inside each group \[DATA/groups.json if there]."
    ),
    rescore: Optional[Path] = typer.Option(
        None, "--from", help="An earlier agreement.json: add the agreement inside groups (--groups) from its per-photo scores; no model runs."
    ),
    mirrored: bool = typer.Option(
        False, "--reference-mirrored", help="Also run the reference on every photo mirrored left-right and measure it "
        "against itself: how much of its own order survives a change no viewer would notice."
    ),
    out: Path = typer.Option(Path("runs/bench"), help="Output folder."),
) -> None:
    """Spearman ρ and pairwise ranking accuracy of each bundle's FP32 and INT8 scores against a reference model,
    the CC of their maps with its map where it has one (ResMem: Grad-CAM), and ρ inside groups of similar photos."""
    from memgaze.bench.agreement import agreement_groups, parse_models, run_agreement
    from memgaze.bench.within_kind import add_within

    if rescore is not None:
        if groups is None:
            fail("--from needs --groups (the photos' groups)")
        if mirrored:
            fail("--reference-mirrored runs the reference on the photos: give --data, not --from")
        try:
            earlier = json.loads(rescore.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            fail(f"--from {rescore}: cannot read it as JSON ({exc})")
        _finish(out, "agreement.json", add_within(earlier, agreement_groups(None, groups)))
        return
    if data is None:
        fail("--data is needed (or --from an earlier agreement.json)")
    models = parse_models(model) if model else [("built-in", resolve(None))]
    _finish(out, "agreement.json", run_agreement(models, data, reference, agreement_groups(data, groups), mirrored))


@app.command()
def gate(
    model: Optional[list[str]] = typer.Option(
        None, "--model", help=r"LABEL=BUNDLE (repeatable): bundles (or built-in models' names) with INT8 files \[the built-in model]."
    ),
    data: Path = typer.Option(..., "--data", help="Folder of real images none of the bundles calibrated on."),
    subsets: int = typer.Option(500, min=1, help="Random subsets of 32 frames each file is judged on."),
    seed: int = typer.Option(0, help="Seed of the subsets."),
    out: Path = typer.Option(Path("runs/bench"), help="Output folder."),
) -> None:
    """The accuracy gate's figures for each INT8 file against FP32, on all frames and on random 32-frame subsets (the
    distributions memgaze.gate.RULE's thresholds are set from)."""
    from memgaze.bench.agreement import parse_models
    from memgaze.bench.gate import run_gate

    models = parse_models(model) if model else [("built-in", resolve(None))]
    _finish(out, "gate.json", run_gate(models, data, subsets, seed))


@app.command()
def train(
    image_size: int = typer.Option(224, help="Square input side."),
    batch: int = typer.Option(16, help="Images per training step."),
    steps: int = typer.Option(10, help="Timed steps per model."),
    warmup: int = typer.Option(2, help="Untimed steps first."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
    out: Path = typer.Option(Path("runs/bench"), help="Output folder."),
) -> None:
    """Training throughput (images/s): teacher step, student step with teacher KD, student alone."""
    from memgaze.bench.train_speed import run_train_speed

    result = run_train_speed(image_size=image_size, batch=batch, steps=steps, warmup=warmup, device=device)
    _finish(out, "train.json", result)


@app.command()
def lamem(
    data: Path = typer.Argument(..., help="Dataset root in the LaMem layout: images/ and splits/{train,val,test}_<k>.txt (LaMem's own release folder as it is)."),
    train: bool = typer.Option(False, "--train", help="Train teacher and student on every split first, with the same settings; a finished split is kept, an interrupted one resumed."),
    runs: Optional[Path] = typer.Option(None, "--runs", help=r"Per-split runs RUNS/fold_<k>/ (memgaze-train --fold K --out RUNS/fold_K) \[OUT/runs]."),
    folds: Optional[str] = typer.Option(None, "--folds", help=r"Which splits, by number, as memgaze-train --fold K (comma list) \[every complete split in DATA/splits]."),
    ablation: bool = typer.Option(False, "--ablation", help="Also the student without gaze imitation, same seed, split and teacher (RUNS/fold_<k>/no-gaze/)."),
    peer: Optional[list[str]] = typer.Option(None, "--peer", help="'resmem' or an ONNX memorability model, scored on each split's test list (repeatable)."),
    config: Optional[Path] = typer.Option(None, "--config", help="memgaze-train settings (JSON) every split trains with."),
    epochs_teacher: Optional[int] = typer.Option(None, "--epochs-teacher", help="With --train: teacher epochs " + bracket(str(EPOCHS)) + "."),
    epochs_student: Optional[int] = typer.Option(None, "--epochs-student", help="With --train: student epochs " + bracket(str(EPOCHS)) + "."),
    image_size: Optional[int] = typer.Option(None, "--image-size", help="With --train: input side, a multiple of 32 " + bracket(str(IMAGE_SIZE)) + "."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Images per step and per test batch " + shown("batch_size") + "."),
    student_backbone: Optional[str] = typer.Option(None, "--student-backbone", help="With --train: the student trunk (as memgaze-train)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="With --train: the seed of every split's run " + shown("seed") + "."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    out: Path = typer.Option(Path("runs/lamem"), help="Output folder."),
) -> None:
    """LaMem's protocol: ρ, r and MSE on every split's test list and their mean ± std, next to peers and published figures."""
    from memgaze.bench.lamem import Request, run_lamem
    from memgaze.train.config import build_config, read_config_file

    cfg = build_config(read_config_file(config) if config is not None else None, {
        "data": str(data), "epochs_teacher": epochs_teacher, "epochs_student": epochs_student, "image_size": image_size,
        "batch_size": batch_size, "student_backbone": student_backbone, "seed": seed, "device": device,
    })
    request = Request(data=data, out=out, runs=runs or out / "runs", folds=_ints(folds, "folds") if folds else None,
                      train=train, ablation=ablation, peers=list(peer or []), device=device, batch_size=cfg.batch_size)
    _finish(out, "lamem.json", run_lamem(request, cfg))


@app.command()
def personalization(
    checkpoint: Path = typer.Option(..., "--checkpoint", help="A student checkpoint with users (memgaze-train OUT/student.safetensors)."),
    data: Path = typer.Option(..., "--data", help="Dataset root (LaMem layout) with the users' gaze under gaze/."),
    split: str = typer.Option("test", help="The held-out split: train, val or test."),
    fold: int = typer.Option(1, help="Split number k of splits/<split>_<k>.txt."),
    limit: Optional[int] = typer.Option(None, help="Use at most this many images."),
    figure: Optional[Path] = typer.Option(None, "--figure", help="Also copy the example figure here (e.g. docs/img/personalization.png)."),
    out: Path = typer.Option(Path("runs/bench"), help="Output folder."),
) -> None:
    """Per user on held-out images: the generic, own (personalized) and another user's map against the user's gaze, in CC, KLD, SIM, NSS, AUC-Judd and sAUC."""
    from memgaze.bench.personalization import run_personalization

    _finish(out, "personalization.json", run_personalization(checkpoint, data, split, fold, limit, out, figure))


@app.command()
def report(folder: Path = typer.Argument(..., help="Folder holding latency/pipeline/accuracy/agreement/train JSON results.")) -> None:
    """Rebuild report.md, the plots and report.html from the JSON results in FOLDER."""
    console.print(f"wrote {write_report(folder)}")


def main() -> None:
    """Console entry point."""
    run_cli(app)
