"""Check every TensorRT name memgaze uses against the real Python bindings of each supported TensorRT version.

For each version in ``VERSIONS`` this downloads that version's bindings wheel from PyPI (``pip download
--no-deps``; cached in ``.cache/trt-bindings/``), and loads its ``tensorrt.so`` in a subprocess with empty
stand-ins for ``libnvinfer*`` (lazy binding: no TensorRT function is ever called), so the module's
real classes, methods and enum members can be listed. The code is read with ``ast``:

- ``trt.X`` / ``trt.X.Y`` chains must exist exactly (module attribute, then class member);
- ``obj.name`` where ``obj`` holds a TensorRT object (what ``trt.X(...)`` returned, what was assigned
  from it, a parameter annotated ``trt.X``): a member of some class of that version (the exact class is
  not inferred);
- ``BuilderFlag`` members are taken from :class:`memgaze.trt.recipe.Recipe` for every precision and DLA
  choice that version accepts (the flags are looked up by name at build time);
- lines marked ``# trt-only: 8,10`` are checked only against those major versions.

Without a C compiler the bindings cannot be loaded; the check then falls back to the names the ``.so``
holds as strings (weaker: a name is found even if it belongs to another class) and says so.

    python tools/trt_api_check.py [--cache DIR]      # exit 1 and one line per missing name
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("memgaze/trt/build.py", "memgaze/trt/probe.py", "runtime/backends/tensorrt_backend.py")
# (pip requirement, TensorRT version): JetPack 5, JetPack 6, and TensorRT 11.
VERSIONS = (
    ("tensorrt-bindings==8.6.1", "8.6.1"),
    ("tensorrt-cu12-bindings==10.3.0", "10.3.0"),
    ("tensorrt-cu13-bindings==11.4.0.106", "11.4.0"),
)
MARKER = re.compile(r"#\s*trt-only:\s*([\d,\s]+)")

DUMP = r'''
import importlib.util, inspect, json, os, sys
sys.setdlopenflags(os.RTLD_LAZY | os.RTLD_LOCAL)
spec = importlib.util.spec_from_file_location("tensorrt", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
out = {"module": sorted(dir(module)), "classes": {}}
for name in dir(module):
    value = getattr(module, name)
    if inspect.isclass(value):
        out["classes"][name] = sorted(dir(value))
print(json.dumps(out))
'''


@dataclass(frozen=True)
class Use:
    """One TensorRT name the code uses: ``path`` from the ``trt`` module, or a member name on some object."""

    path: tuple[str, ...]
    rooted: bool  # True: trt.X.Y; False: obj.member
    where: str
    only: frozenset[int] | None  # major versions the line is meant for (None: all)


def _chain(node: ast.AST) -> list[str] | None:
    """``trt.A.B`` → ["A", "B"] (None when the chain does not start at the name ``trt``)."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    return parts[::-1] if isinstance(node, ast.Name) and node.id in ("trt", "trt_module") else None


class TrtValues:
    """Which expressions of a module hold TensorRT objects: ``trt.X(...)`` results, what is assigned from
    them, parameters annotated ``trt.X``, calls of functions annotated to return ``trt.X``, and
    attributes or method results of any of these."""

    def __init__(self, tree: ast.Module) -> None:
        self.names: set[str] = set()
        self.functions: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if node.returns is not None and "trt." in ast.unparse(node.returns):
                    self.functions.add(node.name)
                for arg in [*node.args.args, *node.args.kwonlyargs]:
                    if arg.annotation is not None and "trt." in ast.unparse(arg.annotation):
                        self.names.add(arg.arg)
        changed = True
        while changed:  # assignments propagate until nothing new is learned
            changed = False
            for node in ast.walk(tree):
                if isinstance(node, ast.Assign):
                    targets, value = node.targets, node.value
                elif isinstance(node, ast.AnnAssign) and node.value is not None:
                    targets, value = [node.target], node.value
                else:
                    continue
                if self.holds(value):
                    for target in targets:
                        text = ast.unparse(target)
                        if text not in self.names:
                            self.names.add(text)
                            changed = True

    def holds(self, node: ast.AST) -> bool:
        """True when ``node`` evaluates to a TensorRT object."""
        if _chain(node) is not None or ast.unparse(node) in self.names:
            return True
        if isinstance(node, ast.Call):
            if isinstance(node.func, ast.Name):
                return node.func.id in self.functions
            return self.holds(node.func)
        if isinstance(node, ast.Attribute):
            return self.holds(node.value)
        return False


def uses_in(path: Path) -> list[Use]:
    """Every TensorRT attribute access in ``path``."""
    text = path.read_text()
    lines = text.splitlines()
    tree = ast.parse(text)
    values = TrtValues(tree)
    found: list[Use] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute):
            continue
        marker = MARKER.search(lines[node.lineno - 1])
        only = frozenset(int(v) for v in marker.group(1).replace(" ", "").split(",") if v) if marker else None
        where = f"{path.relative_to(ROOT)}:{node.lineno}"
        chain = _chain(node)
        if chain is not None:
            found.append(Use(tuple(chain), True, where, only))
        elif _chain(node.value) is None and values.holds(node.value):
            found.append(Use((node.attr,), False, where, only))
    return found


def recipe_flags(version: str) -> set[str]:
    """Every BuilderFlag name memgaze's recipe sets on ``version``, over the precisions and DLA choices it accepts."""
    sys.path.insert(0, str(ROOT))
    from memgaze.errors import MemgazeError
    from memgaze.precision import PRECISIONS
    from memgaze.trt.recipe import Recipe, TrtVersion

    flags: set[str] = set()
    for precision in PRECISIONS:
        for dla in (None, 0):
            try:
                recipe = Recipe("m.onnx", precision, TrtVersion.parse(version), qdq=precision == "int8", dla_core=dla)
            except MemgazeError:
                continue
            flags.update(recipe.builder_flags)
    return flags


def download(requirement: str, cache: Path) -> Path:
    """The bindings wheel for this Python (else any Python: string mode), from the cache or PyPI."""
    folder = cache / requirement.replace("==", "-")
    wheels = sorted(folder.glob("*.whl"))
    if not wheels:
        folder.mkdir(parents=True, exist_ok=True)
        here = f"{sys.version_info.major}.{sys.version_info.minor}"
        for python in (here, "3.11", "3.10"):
            command = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "--python-version", python,
                       "--platform", "manylinux_2_17_x86_64", "--platform", "manylinux_2_28_x86_64", "-d", str(folder), requirement]
            if subprocess.run(command, capture_output=True, text=True).returncode == 0:
                break
        wheels = sorted(folder.glob("*.whl"))
    if not wheels:
        raise SystemExit(f"error: cannot download {requirement} from PyPI")
    return wheels[0]


def _stub_libraries(so: Path, folder: Path) -> bool:
    """Empty ``libnv*.so.N`` files that define the symbols the bindings resolve at load time (needs gcc)."""
    compiler = shutil.which("gcc") or shutil.which("cc")
    if compiler is None or shutil.which("readelf") is None or shutil.which("nm") is None:
        return False
    needed = re.findall(r"\[(libnv[^\]]+)\]", subprocess.run(["readelf", "-d", str(so)], capture_output=True, text=True).stdout)
    undefined = subprocess.run(["nm", "-D", "--undefined-only", str(so)], capture_output=True, text=True).stdout.split()
    symbols = sorted({s for s in undefined if re.match(r"(_ZN\d*nv|create|get|init)\w*", s) and "@" not in s})
    source = folder / "stub.c"
    source.write_text("".join(f'void* stub{i}(void) __asm__("{s}");\nvoid* stub{i}(void) {{ return 0; }}\n' for i, s in enumerate(symbols)))
    for library in needed:
        subprocess.run([compiler, "-shared", "-fPIC", "-o", str(folder / library), f"-Wl,-soname,{library}", str(source)], check=True)
    return True


def python_names(source: str) -> set[str]:
    """Top-level names the wheel's ``__init__.py`` defines itself (``__version__``, ``nptype``, ...)."""
    names = set()
    for node in ast.parse(source).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return names


def api_of(wheel: Path) -> tuple[dict[str, list[str]] | None, set[str]]:
    """``({class: members}, module names)`` of the real bindings, or ``(None, strings)`` when they cannot be loaded."""
    folder = wheel.parent / "extracted"
    so = folder / "tensorrt.so"
    with zipfile.ZipFile(wheel) as archive:
        init = python_names(archive.read(next(n for n in archive.namelist() if n.endswith("/__init__.py") and n.count("/") == 1)).decode())
        if not so.is_file():
            folder.mkdir(exist_ok=True)
            member = next(n for n in archive.namelist() if n.endswith("/tensorrt.so") or re.search(r"/tensorrt\.cpython.*\.so$", n))
            so.write_bytes(archive.read(member))
    tag = re.search(r"-(cp\d+)-", wheel.name)
    if tag and tag.group(1) == f"cp{sys.version_info.major}{sys.version_info.minor}" and _stub_libraries(so, folder):
        env = {"LD_LIBRARY_PATH": str(folder), "PATH": "/usr/bin:/bin"}
        done = subprocess.run([sys.executable, "-c", DUMP, str(so)], capture_output=True, text=True, env=env, timeout=120)
        if done.returncode == 0:
            dumped = json.loads(done.stdout)
            return dumped["classes"], set(dumped["module"]) | init
    strings = set(re.findall(rb"[A-Za-z_][A-Za-z0-9_]{2,}", so.read_bytes()))
    return None, {s.decode() for s in strings} | init


def check_version(uses: list[Use], version: str, classes: dict[str, list[str]] | None, module: set[str]) -> list[str]:
    """Missing names for one version (one line each)."""
    major = int(version.split(".")[0])
    members = set().union(*classes.values()) if classes is not None else module
    missing = []
    for use in uses:
        if use.only is not None and major not in use.only:
            continue
        head, *rest = use.path
        if not use.rooted:
            ok = head in members
        elif classes is None:
            ok = all(part in module for part in use.path)
        else:
            ok = head in module and (not rest or head not in classes or rest[0] in classes[head])
        if not ok:
            missing.append(f"TensorRT {version}: {'trt.' if use.rooted else '.'}{'.'.join(use.path)} ({use.where})")
    flags = classes.get("BuilderFlag", []) if classes is not None else module
    missing += [f"TensorRT {version}: trt.BuilderFlag.{f} (set by memgaze.trt.recipe)" for f in sorted(recipe_flags(version)) if f not in flags]
    return missing


def main(argv: list[str]) -> int:
    cache = Path(argv[argv.index("--cache") + 1]) if "--cache" in argv else ROOT / ".cache" / "trt-bindings"
    uses = [use for source in SOURCES for use in uses_in(ROOT / source)]
    apis = {version: api_of(download(requirement, cache)) for requirement, version in VERSIONS}
    problems = []
    for version, (classes, module) in apis.items():
        mode = "loaded bindings" if classes is not None else "strings of the .so only (no C compiler to load them)"
        print(f"TensorRT {version}: {len(uses)} uses checked against {mode}")
        problems += check_version(uses, version, classes, module)
    for line in problems:
        print(line)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
