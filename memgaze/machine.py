"""What machine this is: CPU, memory, NVIDIA GPUs, and a Jetson's model and L4T / JetPack release.

Read from the files the OS keeps (``/proc/cpuinfo``, ``/proc/meminfo``, ``/etc/nv_tegra_release``,
``/proc/device-tree/model``) under ``root``, so that files recorded on a Jetson can stand in for its own; and from
``nvidia-smi`` / ``nvpmodel`` where they exist. Shared by ``memgaze-checks`` and the benchmarks' reports; numpy-free.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

SYSTEM = Path("/")
SIMD_FLAGS = {"avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8",
              "amx_bf16", "asimd", "asimddp", "asimdhp", "i8mm", "sve"}
# L4T (Jetson Linux) release → JetPack, from NVIDIA's JetPack archive (the newest of each L4T minor).
JETPACK = {"36.4": "6.1 / 6.2", "36.3": "6.0", "36.2": "6.0 DP", "35.6": "5.1.4", "35.5": "5.1.3", "35.4": "5.1.2",
           "35.3": "5.1.1", "35.2": "5.1", "35.1": "5.0.2", "34.1": "5.0 DP", "32.7": "4.6.x", "32.6": "4.6", "32.5": "4.5"}


def run_tool(cmd: list[str], timeout: float = 10.0) -> str | None:
    """stdout of ``cmd`` (stripped), or None when it is missing or fails."""
    if shutil.which(cmd[0]) is None:
        return None
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _read(root: Path, path: str) -> str:
    try:
        return (root / path.lstrip("/")).read_text(errors="replace")
    except OSError:
        return ""


def cpu_model(root: Path = SYSTEM) -> str:
    """CPU model name from /proc/cpuinfo ("model name", or an ARM board's "Hardware"/"Model")."""
    text = _read(root, "/proc/cpuinfo")
    for key in ("model name", "Model", "Hardware", "cpu model"):
        match = re.search(rf"^{key}\s*:\s*(.+)$", text, re.MULTILINE)
        if match:
            return match.group(1).strip()
    return "unknown CPU"


def cpu_flags(root: Path = SYSTEM) -> list[str]:
    """The CPU's SIMD features that decide INT8/FP16 speed (AVX2, AVX-512, VNNI, AMX, NEON dot product)."""
    match = re.search(r"^(?:flags|Features)\s*:\s*(.+)$", _read(root, "/proc/cpuinfo"), re.MULTILINE)
    return sorted(f for f in (match.group(1).split() if match else []) if f in SIMD_FLAGS)


def memory_gib(root: Path = SYSTEM) -> float | None:
    """Total physical memory in GiB (from /proc/meminfo)."""
    match = re.search(r"^MemTotal:\s+(\d+) kB", _read(root, "/proc/meminfo"), re.MULTILINE)
    return round(int(match.group(1)) / 2**20, 1) if match else None


def gpus() -> list[dict[str, str]]:
    """GPUs reported by nvidia-smi (name, driver, memory, compute capability); [] without one (and on a Jetson)."""
    fields = ["name", "driver_version", "memory.total", "compute_cap"]
    out = run_tool(["nvidia-smi", f"--query-gpu={','.join(fields)}", "--format=csv,noheader"])
    if not out:
        return []
    return [dict(zip(["name", "driver", "memory", "compute_capability"], (v.strip() for v in line.split(","))))
            for line in out.splitlines()]


def l4t_release(text: str) -> str | None:
    """``# R36 (release), REVISION: 3.0, ...`` → ``36.3.0`` (None when the text is not an nv_tegra_release line)."""
    match = re.search(r"#\s*R(\d+)\s*\(release\),\s*REVISION:\s*([\d.]+)", text)
    return f"{match.group(1)}.{match.group(2)}" if match else None


def jetpack_of(l4t: str) -> str | None:
    """The JetPack release that ships L4T ``l4t`` (``36.3.0`` → ``6.0``), None when not in :data:`JETPACK`."""
    return JETPACK.get(".".join(l4t.split(".")[:2]))


def jetson(root: Path = SYSTEM) -> dict[str, Any] | None:
    """A Jetson's model, L4T and JetPack release and power mode; None elsewhere."""
    release = _read(root, "/etc/nv_tegra_release").strip()
    if not release:
        return None
    l4t = l4t_release(release)
    return {
        "model": _read(root, "/proc/device-tree/model").strip("\x00 \n") or None,
        "release": release.splitlines()[0],
        "l4t": l4t,
        "jetpack": jetpack_of(l4t) if l4t else None,
        "power_mode": run_tool(["nvpmodel", "-q"]) if root == SYSTEM else None,
    }
