"""Describe the machine a benchmark ran on: CPU, memory, GPU, Jetson power mode, library versions."""

from __future__ import annotations

import os
import platform
import re
import sys
from importlib import metadata
from typing import Any

from memgaze.machine import cpu_flags, cpu_model, gpus, jetson, memory_gib, run_tool
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


def jetson_with_clocks() -> dict[str, Any] | None:
    """:func:`memgaze.machine.jetson` and the clocks ``jetson_clocks --show`` reports (a benchmark's context)."""
    found = jetson()
    return None if found is None else {**found, "clocks": run_tool(["jetson_clocks", "--show"])}


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
        "jetson": jetson_with_clocks(),
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
    if jetson() is not None:
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
