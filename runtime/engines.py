"""Build, check and register a TensorRT plan for this machine: what ``memgaze-engine`` and ``memgaze-run`` (first use) run.

The plan is built from the bundle's ONNX with TensorRT's parser (:mod:`memgaze.trt.build`), loaded
back and checked against the FP32 outputs stored in the bundle (:mod:`memgaze.gate_samples`), then
recorded with its checksum: in ``manifest.json``, or, for a bundle this user cannot write, in the user
cache (:mod:`memgaze.runtime.plan_store`). The plan file is written before its registry names it and
removed again if anything fails, so a failed or interrupted build leaves everything as it was.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from memgaze.atomic import write_bytes
from memgaze.console import console
from memgaze.errors import fail
from memgaze.gate import AccuracyReport, enforce_gate
from memgaze.gate_samples import check_against_fp32, read_samples
from memgaze.manifest import MANIFEST_NAME, EngineEntry, Manifest, update_manifest
from memgaze.runtime.backends.tensorrt_backend import TensorRTBackend, select_engine
from memgaze.runtime.bundle import Bundle, load_bundle
from memgaze.runtime.plan_store import ENGINES_NAME, update_engines
from memgaze.trt.build import BuiltPlan, build_plan, dla_summary
from memgaze.trt.fit import Machine, plan_name, timing_cache_name
from memgaze.trt.probe import probe_machine
from memgaze.trt.recipe import MAX_BATCH, Recipe, TrtVersion


@dataclass(frozen=True)
class BuildRequest:
    """What the user asked for (``memgaze-engine`` options; ``memgaze-run`` uses the defaults)."""

    precision: str | None = None  # None: int8 where the bundle has the Q/DQ model, else fp32
    dla_core: int | None = None
    workspace_gb: float = 2.0
    force: bool = False
    allow_degraded: bool = False
    max_batch: int = MAX_BATCH


def default_precision(bundle: Bundle) -> str:
    return "int8" if "int8" in bundle.manifest.models else "fp32"


def recipe_for(bundle: Bundle, request: BuildRequest, version: str) -> Recipe:
    """The recipe for ``bundle`` on TensorRT ``version``: the Q/DQ model for int8, the FP32 one otherwise."""
    precision = request.precision or default_precision(bundle)
    qdq = precision == "int8" and "int8" in bundle.manifest.models
    return Recipe(
        onnx=bundle.manifest.models["int8" if qdq else "fp32"], precision=precision, version=TrtVersion.parse(version),
        qdq=qdq, workspace_gb=request.workspace_gb, dla_core=request.dla_core, max_batch=request.max_batch,
    )


def machine_or_fail() -> Machine:
    machine, why = probe_machine()
    if machine is None:
        fail(f"cannot build a TensorRT plan here: {why}")
    return machine


def _matching(bundle: Bundle, recipe: Recipe, machine: Machine) -> EngineEntry | None:
    """A registered plan for this machine built the same way (precision and DLA core)."""
    entry, _ = select_engine(bundle, recipe.precision, machine)
    return entry if entry is not None and entry.dla_core == recipe.dla_core else None


def _check(bundle: Bundle, entry: EngineEntry) -> AccuracyReport | None:
    """Load the plan (TensorRT's word that it runs here) and judge it on the bundle's FP32 samples
    (None, and says so, for a bundle without samples)."""
    with TensorRTBackend(bundle, entry) as backend:
        if bundle.manifest.gate_samples is None:
            console.print(f"[yellow]warning:[/yellow] bundle {bundle.root} has no gate samples: {entry.file} is not checked against FP32")
            return None
        samples = read_samples(bundle.root, bundle.manifest)
        return check_against_fp32(backend.infer, samples, f"gate samples ({bundle.manifest.gate_samples.source})")


def _register(bundle: Bundle, entry: EngineEntry, replaced: list[EngineEntry]) -> None:
    """Record ``entry`` (replacing ``replaced``) atomically where the bundle keeps its plans, then delete the replaced files."""
    gone = [old.file for old in replaced if old.file != entry.file]

    def keep(engines: list[EngineEntry]) -> list[EngineEntry]:
        return [e for e in engines if e.file not in gone and e.file != entry.file] + [entry]

    def change(manifest: Manifest) -> None:
        manifest.engines = keep(manifest.engines)
        manifest.precisions = list(dict.fromkeys([*manifest.precisions, *entry.precisions()]))

    if bundle.plans == bundle.root:
        update_manifest(bundle.root, change, added=[entry.file], removed=gone)
    else:
        update_engines(bundle.plans, keep, added=[entry.file], removed=gone)
    for name in gone:
        (bundle.plans / name).unlink(missing_ok=True)


def ensure_plan(root: Path, request: BuildRequest = BuildRequest()) -> EngineEntry:
    """A checked plan for this machine in bundle ``root``: the registered one, or a new build (``force``: always)."""
    bundle = load_bundle(root)
    machine = machine_or_fail()
    recipe = recipe_for(bundle, request, machine.tensorrt)
    existing = _matching(bundle, recipe, machine)
    if existing is not None and not request.force:
        console.print(f"{existing.file} already fits this machine (sm {machine.compute_capability}, TensorRT {machine.tensorrt}); --force rebuilds it")
        return existing
    where = f"DLA core {recipe.dla_core} with GPU fallback" if recipe.dla_core is not None else "the GPU"
    console.print(
        f"building a TensorRT {machine.tensorrt} {recipe.plan_precision} plan from {recipe.onnx} for {machine.gpu or 'this GPU'} "
        f"(compute capability {machine.compute_capability}) on {where}; this takes a few minutes",
    )
    bundle.plans.mkdir(parents=True, exist_ok=True)
    cache_path = bundle.plans / timing_cache_name(machine)
    built = _build(root, recipe, cache_path)
    entry = _install(bundle, built.data, _entry(recipe, machine, built.seconds, built.layers), existing, request.allow_degraded)
    write_bytes(cache_path, built.timing_cache)
    console.print(f"[green]✓[/green] {entry.file} built in {built.seconds:.0f} s and recorded in {_registry(bundle)}")
    return entry


def _registry(bundle: Bundle) -> Path:
    """The file that records the bundle's plans."""
    return bundle.root / MANIFEST_NAME if bundle.plans == bundle.root else bundle.plans / ENGINES_NAME


def register_plan(root: Path, plan: Path, request: BuildRequest = BuildRequest()) -> EngineEntry:
    """Check and register a plan built by hand (e.g. with ``memgaze-engine --print-trtexec``'s trtexec command)
    as if ``memgaze-engine`` had built it with ``request``: it must load here and pass the FP32 gate."""
    if not plan.is_file():
        fail(f"plan {plan} does not exist")
    bundle = load_bundle(root)
    machine = machine_or_fail()
    recipe = recipe_for(bundle, request, machine.tensorrt)
    bundle.plans.mkdir(parents=True, exist_ok=True)
    entry = _install(bundle, plan.read_bytes(), _entry(recipe, machine, 0.0, None), _matching(bundle, recipe, machine), request.allow_degraded)
    console.print(f"[green]✓[/green] {plan} registered as {entry.file} in {_registry(bundle)}")
    return entry


def _entry(recipe: Recipe, machine: Machine, seconds: float, layers: dict[str, int] | None) -> EngineEntry:
    """The manifest entry of a plan built by ``recipe`` on ``machine`` (its file name is set once the bytes are known)."""
    return EngineEntry(
        file="", precision=recipe.plan_precision, compute_capability=machine.compute_capability, tensorrt=machine.tensorrt,
        gpu=machine.gpu, built=datetime.now(timezone.utc).isoformat(timespec="seconds"), build_seconds=round(seconds, 1),
        source=recipe.onnx, max_batch=recipe.batches[2], dla_core=recipe.dla_core, layers=layers,
    )


def _install(bundle: Bundle, data: bytes, entry: EngineEntry, existing: EngineEntry | None, allow_degraded: bool) -> EngineEntry:
    """Write the plan, check it against FP32, record it (replacing ``existing``); on any failure remove it again."""
    machine = Machine(entry.compute_capability, entry.tensorrt, entry.gpu)
    entry.file = plan_name(machine, entry.precision, hashlib.sha256(data).hexdigest(), entry.dla_core)
    write_bytes(bundle.plans / entry.file, data)
    try:
        report = _check(bundle, entry)
        if report is not None:
            entry.accuracy = report.as_dict()
            _judge(report, entry, allow_degraded)
        _register(bundle, entry, [existing] if existing is not None else [])
    except BaseException:
        (bundle.plans / entry.file).unlink(missing_ok=True)
        raise
    return entry


def _build(root: Path, recipe: Recipe, cache_path: Path) -> BuiltPlan:
    """Build with the timing cache kept beside the plans; say where a DLA build's layers run."""
    cache = cache_path.read_bytes() if cache_path.is_file() else b""
    if recipe.version.has_progress_monitor:  # TensorRT reports its phases through the progress monitor
        built = build_plan(root / recipe.onnx, recipe, cache, console.print)
    else:
        with console.status(f"TensorRT {recipe.version} is building (it reports no progress; minutes)"):
            built = build_plan(root / recipe.onnx, recipe, cache, console.print)
    if built.layers is not None:
        console.print(dla_summary(built.layers))
    return built


def _judge(report: AccuracyReport, entry: EngineEntry, allow_degraded: bool) -> None:
    """Print the gate's verdict; refuse a plan too far from FP32 unless allowed."""
    if report.passed:
        console.print(f"[green]✓[/green] {entry.file} vs FP32: {report.line()}")
    enforce_gate(report, f"TensorRT plan {entry.file}", allow_degraded, "try --precision fp16 or fp32")
