"""Whether a plan fits this machine: compute capability + TensorRT version, never the GPU's name as text.

TensorRT's own deserialization is the final word (the runtime refuses a plan it cannot load with one
line); this rule decides which plan to try and when to build one. The same names on both sides: the
export and ``memgaze-engine`` record, the runtime compares.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from memgaze.manifest import EngineEntry, compute_capability


@dataclass(frozen=True)
class Machine:
    """What a plan is tied to (``gpu`` is shown to people, never compared)."""

    compute_capability: str
    tensorrt: str
    gpu: str = ""
    dla_cores: int = 0  # DLA cores TensorRT sees here (Jetson AGX/NX Orin and Xavier; none on an Orin Nano)

    @property
    def sm(self) -> str:
        """``sm87`` for compute capability 8.7."""
        return "sm" + self.compute_capability.replace(".", "")


def same_tensorrt(a: str, b: str) -> bool:
    """Plans are only guaranteed to load on the TensorRT release that built them: major.minor.patch must match."""
    return a.split(".")[:3] == b.split(".")[:3]


def mismatch(entry: EngineEntry, machine: Machine) -> str | None:
    """Why the plan ``entry`` does not fit ``machine`` (None when it does)."""
    problems = []
    if compute_capability(entry.compute_capability) != machine.compute_capability:
        problems.append(f"compute capability {entry.compute_capability} (this GPU is {machine.compute_capability})")
    if not same_tensorrt(entry.tensorrt, machine.tensorrt):
        problems.append(f"TensorRT {entry.tensorrt} (this one is {machine.tensorrt})")
    if entry.dla_core is not None and entry.dla_core >= machine.dla_cores:
        problems.append(f"DLA core {entry.dla_core} (this device has {machine.dla_cores} DLA core(s))")
    return f"{entry.file} was built for " + " and ".join(problems) if problems else None


def plan_name(machine: Machine, precision: str, digest: str, dla_core: int | None = None) -> str:
    """``model.sm87.trt10.3.0.int8[.dla0].<sha8>.plan``: machine, precision and content in the name, so a
    rebuild never overwrites a file the manifest still lists."""
    version = ".".join(machine.tensorrt.split(".")[:3])
    dla = f".dla{dla_core}" if dla_core is not None else ""
    return f"model.{machine.sm}.trt{version}.{re.sub(r'[^a-z0-9]+', '-', precision)}{dla}.{digest[:8]}.plan"


def timing_cache_name(machine: Machine) -> str:
    """The timing cache kept beside the plans, one per GPU model and TensorRT version (timings of one compute
    capability differ between GPUs: an Orin Nano is not an AGX Orin; TensorRT refuses a cache of another device)."""
    model = re.sub(r"[^a-z0-9]+", "-", machine.gpu.lower()).strip("-") or "gpu"
    return f"timing.{machine.sm}.{model}.trt{'.'.join(machine.tensorrt.split('.')[:3])}.cache"
