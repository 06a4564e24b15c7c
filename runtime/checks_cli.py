"""``memgaze-checks [BUNDLE]``: a field report to paste into a problem report, as Ultralytics' ``yolo checks`` is.

Prints the machine (a Jetson's model and L4T / JetPack release), the libraries (numpy, OpenCV and its build, ONNX
Runtime's providers, CUDA, TensorRT, pycuda), the cameras, the bundle's files (checksums, TensorRT parser checks,
where plans are kept) and every backend and precision that runs here, each judged against FP32 on the bundle's gate
samples by the same gate as the export, with its time per frame. Writes the same as JSON. Exits 1 when a backend
fails the gate, 0 otherwise. Torch-free and onnx-free: it runs on the device.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from memgaze.atomic import write_json
from memgaze.builtin import resolve
from memgaze.console import console
from memgaze.errors import run_cli
from memgaze.runtime.bundle import load_bundle
from memgaze.runtime.field_report import field_report
from memgaze.version import version_option

app = typer.Typer(add_completion=False, help=__doc__, pretty_exceptions_enable=False)
REPORT_WIDTH = 160  # columns when stdout is not a terminal (a file or a pipe: the report is pasted, not read live)


def _text(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k} {_text(v)}" for k, v in value.items() if v not in (None, [], ""))
    if isinstance(value, list):
        return ", ".join(map(str, value)) or "none"
    return "—" if value is None else str(value)


def facts_table(report: dict[str, Any]) -> Table:
    """Machine, software, cameras and bundle, one row per fact."""
    table = Table(title="memgaze-checks", title_justify="left", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("found", overflow="fold")
    machine, software, bundle = report["machine"], report["software"], report["bundle"]
    jetson = machine["jetson"]
    rows = [
        ("machine", f"{machine['cpu']} · {machine['cores_usable']} cores · {machine['memory_gib']} GiB · {machine['platform']}"),
        ("jetson", "not a Jetson" if jetson is None else
         f"{jetson['model'] or 'unknown model'} · L4T {jetson['l4t']} · JetPack {jetson['jetpack'] or 'unknown'}"),
        ("GPUs (nvidia-smi)", _text([g["name"] for g in machine["gpus"]])),
        ("memgaze / Python", f"{software['memgaze']} / {software['python']} ({software['python_executable']})"),
        ("numpy", software["numpy"]),
        ("OpenCV", _text({k: v for k, v in software["opencv"].items() if k != "file"})),
        ("ONNX Runtime", _text(software["onnxruntime"])),
        ("CUDA driver / TensorRT / pycuda", f"{_text(software['cuda_driver'])} / {_text(software['tensorrt'])} / "
                                            f"{_text(software['pycuda'])}"),
        ("cameras", _text(report["cameras"])),
        ("bundle", f"{bundle['path']} · {bundle['model']} · exported by memgaze {bundle['exported_by']} · "
                   f"{'x'.join(map(str, bundle['input_size']))} · {_text(bundle['precisions'])}"),
        ("TensorRT parser checks", _text({name: "pass" if check.get("passed") else f"FAIL ({check.get('total_findings')})"
                                          for name, check in bundle["tensorrt_parser_checks"].items()})
         if isinstance(bundle["tensorrt_parser_checks"], dict) else bundle["tensorrt_parser_checks"]),
        ("plans", f"{_text(bundle['plans'])} in {bundle['plans_folder']} "
                  f"({'writable' if bundle['plans_folder_writable'] else 'NOT writable'})"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    return table


def backends_table(report: dict[str, Any]) -> Table:
    """One row per backend and precision: file, verdict, ms per frame."""
    gate = report["gate"]
    title = (f"backends on the gate samples (Spearman ≥ {gate['min_spearman']}, max |Δscore| ≤ {gate['max_score_shift']} "
             f"of the spread, heatmap CC ≥ {gate['min_heatmap_cc']}, worst ≥ {gate['min_heatmap_cc_worst']})")
    table = Table(title=title, title_justify="left")
    for column in ("backend", "precision", "file", "verdict", "ms / frame"):
        table.add_column(column, overflow="fold")
    for run in report["backends"]:
        latency = "" if run["latency_ms"] is None else f"{run['latency_ms']:.2f}"
        style = "green" if run["verdict"] == "pass" else "red" if run["verdict"].startswith("FAIL") else "yellow"
        table.add_row(run["backend"], run["precision"], run["file"], f"[{style}]{run['verdict']}[/{style}]", latency)
    return table


@app.command()
def checks(
    bundle: Optional[Path] = typer.Argument(None, help=r"Deploy bundle folder, or a built-in model's name \[the built-in model]."),
    json_path: Path = typer.Option(Path("memgaze-checks.json"), "--json", help="Where to write the report as JSON."),
    run: bool = typer.Option(True, "--run/--no-run", help="Run every backend on the gate samples (--no-run: facts only)."),
    root: Path = typer.Option(Path("/"), "--root", hidden=True, help="Read the system files under this folder (tests)."),
    version: bool = version_option(),
) -> None:
    """Print and save a field report of this machine, its libraries and the bundle's backends."""
    opened = load_bundle(resolve(bundle))
    with console.status("running every backend on the bundle's gate samples" if run else "collecting"):
        report = field_report(opened, root, run_backends=run)
    out = Console(highlight=False)
    if not out.is_terminal:
        out = Console(highlight=False, width=REPORT_WIDTH)
    out.print(facts_table(report))
    if run:
        out.print(backends_table(report))
    write_json(json_path, report)
    console.print(f"report written to {json_path}: paste it, and the tables above, into your problem report", soft_wrap=True)
    if any(r["verdict"].startswith("FAIL") for r in report["backends"]):
        raise typer.Exit(1)


def main() -> None:
    """Console entry point; errors are one line and exit 2."""
    run_cli(app)
