"""Describe the machine a benchmark ran on: CPU, memory, GPU, Jetson power mode, library versions."""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from memgaze.system import usable_cores

# Distribution names to try for each library (first installed one wins).
LIBRARIES: dict[str, tuple[str, ...]] = {
    "numpy": ("numpy",),
    "torch": ("torch",),
    "torchvision": ("torchvision",),
    "onnxruntime": ("onnxruntime", "onnxruntime-gpu", "onnxruntime-openvino"),
    "tensorrt": ("tensorrt", "tensorrt-cu12", "tensorrt-cu13", "tensorrt-libs"),
    "opencv": ("opencv-python-headless", "opencv-python", "opencv-contrib-python"),
    "resmem": ("resmem",),
}
JETSON_RELEASE = Path("/etc/nv_tegra_release")
SIMD_FLAGS = {"avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8",
              "amx_bf16", "asimd", "asimddp", "asimdhp", "i8mm", "sve"}


def _run(cmd: list[str], timeout: float = 10.0) -> str | None:
    """stdout of ``cmd`` (stripped), or None when it is missing or fails."""
    if shutil.which(cmd[0]) is None:
        return None
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def library_versions() -> dict[str, str | None]:
    """Installed version of each library in LIBRARIES (None when absent) and of Python."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name, dists in LIBRARIES.items():
        versions[name] = None
        for dist in dists:
            try:
                versions[name] = metadata.version(dist)
                break
            except metadata.PackageNotFoundError:
                continue
    if versions["tensorrt"] is None and "tensorrt" in sys.modules:  # JetPack installs it outside pip
        versions["tensorrt"] = getattr(sys.modules["tensorrt"], "__version__", None)
    return versions


def cpu_model() -> str:
    """CPU model name from /proc/cpuinfo, else platform.processor()."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        text = ""
    for key in ("model name", "Model", "Hardware", "cpu model"):
        match = re.search(rf"^{key}\s*:\s*(.+)$", text, re.MULTILINE)
        if match:
            return match.group(1).strip()
    return platform.processor() or platform.machine()


def cpu_flags() -> list[str]:
    """The CPU's SIMD features that decide INT8/FP16 speed (AVX2, AVX-512, VNNI, AMX, NEON dot product)."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return []
    match = re.search(r"^(?:flags|Features)\s*:\s*(.+)$", text, re.MULTILINE)
    flags = set(match.group(1).split()) if match else set()
    return sorted(f for f in flags if f in SIMD_FLAGS)


def memory_gib() -> float | None:
    """Total physical memory in GiB (from /proc/meminfo or sysconf)."""
    try:
        match = re.search(r"^MemTotal:\s+(\d+) kB", Path("/proc/meminfo").read_text(), re.MULTILINE)
        if match:
            return round(int(match.group(1)) / 2**20, 1)
    except OSError:
        pass
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return None


def gpus() -> list[dict[str, str]]:
    """GPUs reported by nvidia-smi (name, driver, memory, compute capability); [] without one."""
    fields = ["name", "driver_version", "memory.total", "compute_cap"]
    out = _run(["nvidia-smi", f"--query-gpu={','.join(fields)}", "--format=csv,noheader"])
    if not out:
        return []
    rows = []
    for line in out.splitlines():
        values = [v.strip() for v in line.split(",")]
        rows.append(dict(zip(["name", "driver", "memory", "compute_capability"], values)))
    return rows


def jetson() -> dict[str, Any] | None:
    """Jetson release, power mode (nvpmodel -q) and clocks (jetson_clocks --show); None elsewhere."""
    if not JETSON_RELEASE.is_file():
        return None
    try:
        release = JETSON_RELEASE.read_text(errors="replace").strip().splitlines()[0]
    except (OSError, IndexError):
        release = None
    return {
        "release": release,
        "power_mode": _run(["nvpmodel", "-q"]),
        "clocks": _run(["jetson_clocks", "--show"]),
    }


def describe_machine() -> dict[str, Any]:
    """Everything a reader needs to judge a benchmark number from this machine."""
    return {
        "slug": machine_slug(),
        "os": f"{platform.system()} {platform.release()}",
        "arch": platform.machine(),
        "cpu": cpu_model(),
        "cpu_cores": os.cpu_count(),
        "cpu_cores_usable": usable_cores(),
        "cpu_flags": cpu_flags(),
        "memory_gib": memory_gib(),
        "load_average": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "gpus": gpus(),
        "jetson": jetson(),
        "versions": library_versions(),
    }


def simd_tier(flags: list[str]) -> str:
    """The SIMD level that decides INT8 speed on a CPU: ``amx``, ``avx512vnni``, ``avxvnni``, ``avx2``, ``neondot``…"""
    for flag, tier in (("amx_int8", "amx"), ("avx512_vnni", "avx512vnni"), ("avx_vnni", "avxvnni"), ("avx512f", "avx512"),
                       ("avx2", "avx2"), ("asimddp", "neondot"), ("asimd", "neon")):
        if flag in flags:
            return tier
    return ""


def machine_slug() -> str:
    """Folder name for committed results: ``cpu-2core-x86_64-avx512vnni``, ``jetson-orin-aarch64``, ``gpu-…``.

    A CPU's slug names its SIMD tier, which changes INT8 results several-fold (AVX2 vs AVX-512 VNNI)."""
    arch = platform.machine() or "unknown"
    found = gpus()
    if JETSON_RELEASE.is_file():
        return f"jetson-{arch}"
    if found:
        return "gpu-" + re.sub(r"[^a-z0-9]+", "-", found[0]["name"].lower()).strip("-") + f"-{arch}"
    tier = simd_tier(cpu_flags())
    return f"cpu-{os.cpu_count()}core-{arch}" + (f"-{tier}" if tier else "")


def machine_line(machine: dict[str, Any]) -> str:
    """One line for the top of a report: CPU, memory, GPU, main versions."""
    simd = "; " + " ".join(machine["cpu_flags"]) if machine.get("cpu_flags") else ""
    parts = [f"{machine['cpu']} ({machine['cpu_cores']} cores{simd})", f"{machine['memory_gib']} GiB RAM"]
    if machine["gpus"]:
        gpu = machine["gpus"][0]
        parts.append(f"GPU {gpu['name']} (driver {gpu['driver']})")
    else:
        parts.append("no GPU")
    if machine["jetson"]:
        parts.append(f"Jetson {machine['jetson']['power_mode'] or 'power mode unknown'}")
    if machine.get("load_average"):
        parts.append(f"load {machine['load_average'][0]:.1f} at start")
    parts.append(f"{machine['os']} {machine['arch']}")
    versions = machine["versions"]
    parts.append(", ".join(f"{k} {v}" for k, v in versions.items() if v is not None))
    absent = [k for k, v in versions.items() if v is None]
    if absent:
        parts.append("not installed: " + ", ".join(absent))
    return " · ".join(parts)
