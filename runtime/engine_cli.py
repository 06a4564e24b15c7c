"""``memgaze-engine BUNDLE``: build this machine's TensorRT plan from the bundle's ONNX, check it against FP32
and record it in the manifest. Torch-free and onnx-free, like the runtime: it runs on the device.

``--print-trtexec --trt-version X.Y`` prints the equivalent ``trtexec`` command for that TensorRT
version instead (no TensorRT needed); ``--register PLAN`` checks and records a plan built with it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from memgaze.builtin import resolve
from memgaze.console import console
from memgaze.errors import fail, run_cli
from memgaze.precision import PRECISIONS
from memgaze.runtime.bundle import load_bundle
from memgaze.runtime.engines import BuildRequest, ensure_plan, recipe_for, register_plan
from memgaze.trt.probe import tensorrt_module
from memgaze.trt.recipe import MAX_BATCH, bundle_inputs
from memgaze.version import version_option

app = typer.Typer(add_completion=False, help=__doc__, pretty_exceptions_enable=False)


def print_trtexec(bundle_path: Path, request: BuildRequest, trt_version: str | None) -> None:
    """Print the trtexec command (for ``trt_version``, else the installed TensorRT's) on stdout."""
    installed = tensorrt_module()
    version = trt_version or (str(installed.__version__) if installed is not None else None)
    if version is None:
        fail("TensorRT is not installed here: say which version the command is for with --trt-version (e.g. 8.6, 10.3)")
    bundle = load_bundle(bundle_path)
    recipe = recipe_for(bundle, request, version)
    height, width = bundle.input_size
    out = Path() if bundle.plans == bundle.root else bundle.plans  # a read-only bundle's plans go to the user cache
    plan, cache = out / f"model.trt{recipe.version}.{recipe.plan_precision}.plan", out / f"timing.trt{recipe.version}.cache"
    command = recipe.trtexec_command(bundle_inputs(height, width, bundle.personalized), str(plan), str(cache))
    console.print(f"# TensorRT {recipe.version}: run inside {bundle.root}, then: memgaze-engine {bundle.root} --register {plan}",
                  soft_wrap=True)
    print(command)


@app.command()
def engine(
    bundle: Optional[Path] = typer.Argument(None, help=r"Deploy bundle folder written by memgaze-export, or a built-in model's name \[the built-in model]."),
    precision: Optional[str] = typer.Option(None, "--precision", help=f"{' | '.join(PRECISIONS)}; default: int8 where the bundle has the INT8 model."),
    dla_core: Optional[int] = typer.Option(None, "--dla-core", min=0, help="Build for this DLA core (Jetson): static batch 1, GPU fallback."),
    workspace: float = typer.Option(2.0, "--workspace", help="TensorRT builder workspace, GB."),
    max_batch: int = typer.Option(MAX_BATCH, "--max-batch", min=1, help="Largest batch the plan takes (GPU builds)."),
    force: bool = typer.Option(False, "--force", help="Rebuild even when a plan for this machine is registered."),
    allow_degraded: bool = typer.Option(False, "--allow-degraded", help="Keep a plan that fails the FP32 gate."),
    print_command: bool = typer.Option(False, "--print-trtexec", help="Print the equivalent trtexec command and exit."),
    trt_version: Optional[str] = typer.Option(None, "--trt-version", help="With --print-trtexec: the TensorRT version (8.6, 10.x, 11.x)."),
    register: Optional[Path] = typer.Option(
        None, "--register", help="Check and record a plan built by hand (the printed trtexec command) instead of building one."
    ),
    version: bool = version_option(),
) -> None:
    """Build, check and register the TensorRT plan for this machine (in the user cache for a read-only bundle)."""
    bundle = resolve(bundle)
    request = BuildRequest(
        precision=precision, dla_core=dla_core, workspace_gb=workspace, force=force, allow_degraded=allow_degraded,
        max_batch=max_batch,
    )
    if print_command:
        print_trtexec(bundle, request, trt_version)
        return
    if trt_version is not None:
        fail("--trt-version only goes with --print-trtexec (a build uses the installed TensorRT)")
    if register is not None:
        register_plan(bundle, register, request)
        return
    ensure_plan(bundle, request)


def main() -> None:
    """Console entry point; errors are one line and exit 2."""
    run_cli(app)
