"""Check that ``pip install memgaze`` on a Jetson keeps numpy 1.x.

JetPack's OpenCV (apt's ``python3-opencv``, which the install keeps for CSI cameras and the window) is built
against numpy 1.x, and numpy 2 changed the C ABI: a numpy 2 pulled in by pip would stop the system ``cv2`` from
importing. For each target below this resolves, from PyPI, what pip would install for memgaze (``setup.cfg``'s
``install_requires``, and with the ``runtime`` extra), for an aarch64 / CPython 3.10 machine of that glibc, with
``pip install --dry-run --report`` (binary wheels only), and fails when the numpy it ends with is 2 or newer.

- pip evaluates environment markers for the machine it runs on, not for ``--platform``, so this evaluates
  ``setup.cfg``'s markers for the target first (``packaging.markers``) and hands pip the requirements that apply
  there. The dependencies' own markers are still pip's, for this machine's Python.
- A numpy the device already has is kept when it satisfies everything (pip's default upgrade strategy): the
  resolution is tried with it pinned first, and without the pin only when that is impossible, giving the numpy
  pip would upgrade to.
- The ``jetson`` extra is resolved without pycuda: pycuda has no wheels (it is built on the device) and its run-time
  requirements (pytools, platformdirs, mako) name no numpy; the rest of the extra (ONNX Runtime, the fallback) is.

Needs PyPI (about half a minute); CI runs it through ``make jetson-check``.

    python tools/jetson_resolve.py     # one line per target and requirement set; exit 1 if numpy 2 would be installed
"""

from __future__ import annotations

import configparser
import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
PYTHON = "3.10"  # JetPack 6's; JetPack 5 users install it beside the system's 3.8 (memgaze needs >= 3.10)
EXTRAS = ((), ("runtime",), ("jetson",))  # the requirement sets resolved: memgaze, memgaze[runtime], memgaze[jetson]
BUILT_ON_DEVICE = {"pycuda"}  # no wheels: built from source on the Jetson, and asks no numpy


@dataclass(frozen=True)
class Target:
    """A Jetson as its user starts: the OS's glibc, and the numpy its Python 3.10 already has (None: none)."""

    name: str
    glibc_minor: int
    numpy: str | None

    @property
    def platforms(self) -> list[str]:
        """pip's ``--platform`` tags for this glibc (pip does not expand a manylinux tag to the older ones)."""
        return [f"manylinux_2_{minor}_aarch64" for minor in range(self.glibc_minor, 16, -1)] + ["manylinux2014_aarch64", "linux_aarch64"]


TARGETS = (
    Target("JetPack 6 (Ubuntu 22.04, apt's numpy 1.21.5)", 35, "1.21.5"),
    Target("JetPack 5 (Ubuntu 20.04) with Python 3.10, no numpy yet", 31, None),
)

ENVIRONMENT = {
    "platform_machine": "aarch64", "python_version": PYTHON, "python_full_version": f"{PYTHON}.12", "sys_platform": "linux",
    "platform_system": "Linux", "os_name": "posix", "implementation_name": "cpython", "platform_python_implementation": "CPython",
}


def requirements(extras: tuple[str, ...], setup_cfg: Path = ROOT / "setup.cfg") -> list[str]:
    """``setup.cfg``'s install_requires (and ``extras``) that apply on the target, without their markers."""
    config = configparser.ConfigParser()
    config.read(setup_cfg)
    lines = config["options"]["install_requires"].splitlines()
    for extra in extras:
        lines += config["options.extras_require"][extra].splitlines()
    applying = []
    for line in filter(None, (line.strip() for line in lines)):
        requirement = Requirement(line)
        if requirement.name in BUILT_ON_DEVICE:
            continue
        if requirement.marker is None or requirement.marker.evaluate({**ENVIRONMENT, "extra": ""}):
            requirement.marker = None
            applying.append(str(requirement))
    return applying


def resolve(target: Target, wanted: list[str], numpy_pin: str | None) -> dict[str, dict[str, Any]] | None:
    """``{name: metadata}`` of what pip would install on ``target`` (``numpy_pin``: numpy held at that version), or None when
    no resolution exists; any other pip failure is an error."""
    with tempfile.TemporaryDirectory() as folder:
        constraints = Path(folder) / "constraints.txt"
        constraints.write_text(f"numpy=={numpy_pin}\n" if numpy_pin else "")
        command = [
            sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet", "--report", "-",
            "--only-binary=:all:", "--python-version", PYTHON, "--implementation", "cp", "--abi", f"cp{PYTHON.replace('.', '')}",
            *(arg for tag in target.platforms for arg in ("--platform", tag)), "-c", str(constraints), *wanted,
        ]
        done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        if numpy_pin and ("ResolutionImpossible" in done.stderr or "conflicting dependencies" in done.stderr):
            return None
        sys.exit(f"error: pip could not resolve {' '.join(wanted)} for {target.name}:\n{done.stderr.strip()}")
    return {item["metadata"]["name"].lower(): item["metadata"] for item in json.loads(done.stdout)["install"]}


def numpy_bounds(installed: dict[str, dict[str, Any]], have: str) -> list[str]:
    """``"onnxruntime asks numpy>=1.21.6"`` for each resolved package whose numpy requirement excludes ``have``."""
    found = []
    for name, metadata in installed.items():
        for line in metadata.get("requires_dist") or []:
            requirement = Requirement(line)
            if requirement.name == "numpy" and requirement.marker is None and not requirement.specifier.contains(have):
                found.append(f"{name} asks numpy{requirement.specifier}")
    return found


def check(target: Target, extras: tuple[str, ...]) -> bool:
    """Print what happens to numpy for ``memgaze[extras]`` on ``target``; False when it would be numpy 2."""
    wanted = requirements(extras)
    label = f"memgaze[{','.join(extras)}]" if extras else "memgaze"
    kept = resolve(target, wanted, target.numpy) if target.numpy else None
    if kept is not None:
        print(f"{target.name}: {label} keeps numpy {target.numpy}")
        return True
    installed = resolve(target, wanted, None)
    assert installed is not None
    if "numpy" not in installed:
        print(f"{target.name}: {label} installs no numpy")
        return True
    numpy = installed["numpy"]["version"]
    ok = Version(numpy) < Version("2")
    why = "" if target.numpy is None else f" ({', '.join(numpy_bounds(installed, target.numpy)) or 'the pin does not resolve'})"
    print(f"{target.name}: {label} installs numpy {numpy}{why}{'' if ok else ': JetPack OpenCV is built against numpy 1.x'}")
    return ok


def main() -> None:
    results = [check(target, extras) for target in TARGETS for extras in EXTRAS]
    if not all(results):
        sys.exit("error: on a Jetson, pip would replace numpy with numpy 2 (see setup.cfg's aarch64 numpy requirement)")


if __name__ == "__main__":
    main()
