"""Run the torch-free runtime on an emulated arm64 Debian, arranged as JetPack arranges a Jetson, and check it against x86.

    python tools/arm64_check.py [--cache .cache/arm64] [--out build/arm64] [--skip-without-root]   # make arm64-check

1. An arm64 Debian 12 root with apt's ``python3``, ``python3-numpy`` and ``python3-opencv`` (``mmdebstrap``, once,
   kept under ``--cache``), run with QEMU's user-mode emulator (``qemu-aarch64-static -L ROOT``, no binfmt needed).
   Two things the emulator needs are written into it: the BLAS/LAPACK links Debian's ``alternatives`` would make, and
   an arm64 ``/proc/cpuinfo`` (ONNX Runtime reads the CPU's features there; the host's x86 one would be read instead).
2. memgaze is installed the way a Jetson installs it: ``pip install memgaze[runtime]`` run by the *emulated* Python
   into a venv that sees the system packages, so ``setup.cfg``'s ``platform_machine == "aarch64"`` markers are
   evaluated as on the device: apt's numpy (1.x) is kept and pip's OpenCV is not installed.
3. Under emulation (QEMU's Cortex-A76, the model nearest the Orin's Cortex-A78AE): ``memgaze-checks`` on the built-in
   model (FP32 and INT8 on ONNX Runtime against the FP32 outputs the x86 export stored in its gate samples, by the same
   gate), and the built-in model's sample photos scored as a Jetson without a plan scores them (INT8, CPU).
4. On this machine: the same photos scored the same way; the arm64 outputs are judged against x86's by
   :mod:`memgaze.gate`. Exit 1 when anything fails.

Writes ``--out/arm64.json`` (+ ``arm64.md``) and the emulated field report ``--out/checks-arm64.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("python3", "python3-numpy", "python3-opencv", "python3-pip", "python3-venv")
SUITE = "bookworm"
EMULATOR = "qemu-aarch64-static"
# The Orin's CPU is a Cortex-A78AE (Armv8.2-A, dot product, no SVE); QEMU's nearest model is the Cortex-A76. Its
# default "max" model adds SVE, which ONNX Runtime then uses and QEMU emulates ten times slower.
CPU = "cortex-a76"
CPUINFO = "".join(
    f"processor\t: {i}\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp "
    "cpuid asimdrdm lrcpc dcpop asimddp\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x1\n"
    "CPU part\t: 0xd0b\nCPU revision\t: 1\n\n" for i in range(2)
)  # what a Cortex-A76 reports
# The photos are scored as a Jetson without a plan scores them (INT8 on ONNX Runtime's CPU provider); FP32 runs in
# memgaze-checks, against the FP32 outputs the x86 export stored (QEMU emulates float arithmetic slowly).
PHOTO_PRECISIONS = ("int8",)
SCORE = r"""
import json, sys
from pathlib import Path
import cv2, numpy as np
import memgaze
from memgaze import builtin
images = sorted((builtin.DEFAULT.samples_path() / "images").glob("*.png"))
out = {}
for precision in sys.argv[2:]:
    model = memgaze.load(backend="onnxruntime", precision=precision)
    found = model.predict([cv2.imread(str(p), cv2.IMREAD_COLOR) for p in images])
    out[precision] = {"scores": [float(p.score) for p in found], "heatmaps": [p.heatmap.tolist() for p in found],
                      "model": model.describe()}
    model.close()
out["versions"] = {"numpy": np.__version__, "opencv": cv2.__version__, "python": sys.version.split()[0],
                   "onnxruntime": __import__("onnxruntime").__version__, "numpy from": str(Path(np.__file__).parent.parent),
                   "cv2 from": str(Path(cv2.__file__).parent)}
Path(sys.argv[1]).write_text(json.dumps(out))
"""


def run(command: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    """Run ``command``; exit with its output's tail when it fails."""
    done = subprocess.run(command, text=True, capture_output=True, **kwargs)  # type: ignore[call-overload]
    if done.returncode != 0:
        sys.exit(f"error: {' '.join(command[:4])} ... failed ({done.returncode}):\n{(done.stdout + done.stderr)[-3000:]}")
    return done


def debian_root(cache: Path, optional: bool) -> Path:
    """The arm64 Debian root with apt's Python, numpy and OpenCV (made once), fixed up for user-mode emulation.

    When mmdebstrap fails (Debian's packages could not be installed into the root) this exits: with status 1, or with
    status 0 and a line saying the run was skipped where ``optional``."""
    root = cache / f"{SUITE}-{'-'.join(p.removeprefix('python3-') for p in PACKAGES)}"
    if not (root / "usr" / "bin" / "python3").is_file():
        staging = root.with_name(root.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        # apt's methods run as root, not as its ``_apt`` user: where ``_apt`` cannot write /dev/null (some CI
        # sandboxes), apt-key's signature check fails as "gpgv ... required for verification, but neither seems installed".
        made = subprocess.run(["mmdebstrap", "--arch=arm64", "--variant=extract", f"--include={','.join(PACKAGES)}",
                               "--aptopt=APT::Sandbox::User \"root\"", SUITE, str(staging)], text=True, capture_output=True)
        if made.returncode != 0:
            tail = (made.stdout + made.stderr).strip().splitlines()[-12:]
            print("\n".join(tail), file=sys.stderr)
            reason = f"mmdebstrap could not install Debian's arm64 packages into the root (exit {made.returncode})"
            if not optional:
                sys.exit(f"error: {reason}")
            print(f"skipped: the arm64 run: {reason}")
            sys.exit(0)
        staging.rename(root)
    libs = root / "usr" / "lib" / "aarch64-linux-gnu"
    for name, folder in (("libblas.so.3", "blas"), ("liblapack.so.3", "lapack")):
        if not (libs / name).exists():
            (libs / name).symlink_to(f"{folder}/{name}")
    (root / "proc").mkdir(exist_ok=True)
    (root / "proc" / "cpuinfo").write_text(CPUINFO)
    (root / "tmp").mkdir(exist_ok=True)
    return root


def emulated(root: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``args`` run by the emulator, from the root's /tmp (not this checkout, whose ``memgaze/`` would shadow the
    installed package)."""
    return run([EMULATOR, "-cpu", CPU, "-L", str(root), *args], env={**os.environ, **(env or {})}, cwd=root / "tmp")


def install(root: Path, cache: Path) -> Path:
    """A venv of the emulated Python (system packages visible) with this checkout's memgaze[runtime]; its Python."""
    wheels = cache / "wheel"
    shutil.rmtree(wheels, ignore_errors=True)
    run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(ROOT)])
    wheel = next(wheels.glob("memgaze-*.whl"))
    key = hashlib.sha256((ROOT / "setup.cfg").read_bytes() + str(root).encode()).hexdigest()[:12]
    venv = root / "opt" / f"memgaze-{key}"
    python = venv / "bin" / "python"
    if not python.exists():
        emulated(root, str(root / "usr/bin/python3"), "-m", "venv", "--system-site-packages", "--without-pip", str(venv))
        emulated(root, str(python), "-m", "pip", "install", "--quiet", f"{wheel}[runtime]")
    else:
        emulated(root, str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--force-reinstall", str(wheel))
    return python


def judge(arm: dict, x86: dict) -> dict[str, dict]:
    """Each precision's arm64 outputs against x86's, by memgaze's gate."""
    from memgaze.gate import compare_outputs

    verdicts = {}
    for precision in PHOTO_PRECISIONS:
        ref = (np.array(x86[precision]["scores"]), np.array(x86[precision]["heatmaps"]))
        got = (np.array(arm[precision]["scores"]), np.array(arm[precision]["heatmaps"]))
        report = compare_outputs(ref, got, "built-in sample photos, arm64 vs x86")
        verdicts[precision] = {**report.as_dict(), "line": report.line(), "model": arm[precision]["model"]}
    return verdicts


def cell(text: str) -> str:
    """``text`` for a Markdown table cell."""
    return text.replace("|", "\\|")


def markdown(summary: dict) -> str:
    """``arm64.md``: what ran where, and the verdicts."""
    lines = [f"# The runtime on emulated arm64 ({summary['date']})", "",
             f"Debian {SUITE} arm64 under `{EMULATOR} -cpu {CPU}` on {summary['host']}: {summary['arm64']}; x86: {summary['x86']}.",
             f"memgaze installed by the emulated pip (`memgaze[runtime]`): apt's numpy and OpenCV kept, no pip OpenCV.", "",
             "| what | verdict | figures |", "|---|---|---|"]
    for precision, verdict in summary["verdicts"].items():
        lines.append(f"| {precision} on the sample photos, arm64 vs x86 | {'pass' if verdict['passed'] else 'FAIL'} | "
                     f"{cell(verdict['line'])} |")
    for backend in summary["checks"]:
        lines.append(f"| memgaze-checks under emulation: {backend['backend']} {backend['precision']} vs the export's FP32 "
                     f"| {cell(backend['verdict'])} | {cell(backend['figures'])} |")
    return "\n".join(lines) + f"\n\nWall time under emulation: {summary['seconds']:.0f} s.\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=ROOT / ".cache" / "arm64")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "arm64")
    parser.add_argument("--skip-without-root", action="store_true",
                        help="exit 0, saying the run was skipped, when the Debian root cannot be installed (CI)")
    args = parser.parse_args()
    for tool in (EMULATOR, "mmdebstrap"):
        if shutil.which(tool) is None:
            sys.exit(f"error: {tool} is not installed (Debian: apt-get install qemu-user-static mmdebstrap)")
    args.cache.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    root = debian_root(args.cache.resolve(), args.skip_without_root)
    python = install(root, args.cache.resolve())
    env = {"XDG_CACHE_HOME": str(args.cache.resolve() / "xdg")}
    outputs = args.cache.resolve() / "outputs"  # the raw scores and maps, beside the cache (not a result to keep)
    outputs.mkdir(exist_ok=True)
    arm_file, checks_file = outputs / "arm64-outputs.json", args.out.resolve() / "checks-arm64.json"
    emulated(root, str(python), "-c", SCORE, str(arm_file), *PHOTO_PRECISIONS, env=env)
    checks = subprocess.run([EMULATOR, "-cpu", CPU, "-L", str(root), str(python), "-c",
                             "import sys; from memgaze.runtime.checks_cli import main; sys.argv[0] = 'memgaze-checks'; main()",
                             "--json", str(checks_file)], text=True, capture_output=True, env={**os.environ, **env},
                            cwd=root / "tmp")
    seconds = time.monotonic() - started
    x86_file = outputs / "x86-outputs.json"
    run([sys.executable, "-c", SCORE, str(x86_file), *PHOTO_PRECISIONS], env={**os.environ, **env})
    arm, x86 = json.loads(arm_file.read_text()), json.loads(x86_file.read_text())
    report = json.loads(checks_file.read_text()) if checks_file.is_file() else {"backends": []}
    summary = {
        "date": time.strftime("%Y-%m-%d"), "host": platform.processor() or platform.machine(),
        "arm64": ", ".join(f"{k} {str(v).replace(str(root), '')}" for k, v in arm["versions"].items()),
        "x86": ", ".join(f"{k} {v}" for k, v in x86["versions"].items() if not k.endswith(" from")),
        "verdicts": judge(arm, x86), "checks": report["backends"], "checks_exit": checks.returncode,
        "seconds": seconds,
    }
    (args.out / "arm64.json").write_text(json.dumps(summary, indent=2))
    (args.out / "arm64.md").write_text(markdown(summary))
    print(markdown(summary))
    failed = [p for p, v in summary["verdicts"].items() if not v["passed"]]
    if checks.returncode != 0 or failed or not report["backends"]:
        sys.exit(f"error: arm64 run failed (memgaze-checks exit {checks.returncode}, failed: {failed}):\n{checks.stderr[-2000:]}")


if __name__ == "__main__":
    main()
