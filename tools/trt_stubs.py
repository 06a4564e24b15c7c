"""Write a copy of the installed ``tensorrt-stubs`` that mypy can read: ``make typecheck`` points MYPYPATH at it.

As installed, mypy ignores the stubs (no ``py.typed``) and, once it reads them, stops on syntax errors:
pybind's stub generator named some parameters ``in``, a Python keyword. This copies ``tensorrt`` and
``tensorrt_bindings`` (the ``.pyi`` files only), renames those parameters ``in_``, adds ``py.typed``
and checks that every file parses.

    python tools/trt_stubs.py OUT_DIR
"""

from __future__ import annotations

import ast
import importlib.util
import re
import sys
from pathlib import Path

PACKAGES = ("tensorrt", "tensorrt_bindings")
KEYWORDS = frozenset({"in", "is", "as", "from", "lambda", "class", "def", "global", "with", "yield", "pass", "for"})


def split_parameters(text: str) -> list[str]:
    """Split a parameter list at its top-level commas (annotations hold brackets and commas)."""
    parts, depth, current = [], 0, ""
    for char in text:
        depth += char in "([{"
        depth -= char in ")]}"
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    return [*parts, current] if current.strip() else parts


def fix_parameter(parameter: str, after_default: bool) -> str:
    """One parameter with a keyword name renamed ``<name>_``, and ``= ...`` added when it follows a default."""
    name = re.match(r"\s*([A-Za-z_]\w*)", parameter)
    if name and name.group(1) in KEYWORDS:
        parameter = parameter[: name.end(1)] + "_" + parameter[name.end(1):]
    if after_default and "=" not in parameter:
        parameter += " = ..."
    return parameter


def fix_signature(line: str) -> str:
    """A ``def`` line as pybind writes it, made valid Python: keyword-named parameters renamed, and
    parameters that follow one with a default given ``= ...`` (pybind documents the default of a middle one)."""
    opening = line.index("(")
    depth = 0
    for closing in range(opening, len(line)):
        depth += line[closing] in "([{"
        depth -= line[closing] in ")]}"
        if depth == 0:
            break
    fixed, after_default = [], False
    for parameter in split_parameters(line[opening + 1: closing]):
        if parameter.strip().startswith("*") or parameter.strip() == "/":
            after_default = False if parameter.strip().startswith("*") else after_default
            fixed.append(parameter)
            continue
        fixed.append(fix_parameter(parameter, after_default))
        after_default = after_default or "=" in parameter
    return line[: opening + 1] + ",".join(fixed) + line[closing:]


def fix_source(text: str) -> str:
    """``text`` with every one-line ``def`` made valid Python (see :func:`fix_signature`)."""
    return "".join(
        fix_signature(line) if line.lstrip().startswith("def ") and "(" in line else line
        for line in text.splitlines(keepends=True)
    )


def stub_folder(package: str) -> Path:
    """Where the installed stubs of ``package`` live (the folder holding its ``__init__.pyi``)."""
    spec = importlib.util.find_spec(package)
    for location in (spec.submodule_search_locations or []) if spec else []:
        if (Path(location) / "__init__.pyi").is_file():
            return Path(location)
    raise SystemExit(f"error: no type stubs for {package} are installed (pip install --no-deps tensorrt-stubs)")


def write_fixed_stubs(out: Path) -> list[Path]:
    """Write the corrected ``.pyi`` copies under ``out``; return the files written."""
    written = []
    for package in PACKAGES:
        source = stub_folder(package)
        target = out / package
        target.mkdir(parents=True, exist_ok=True)
        for stub in sorted(source.rglob("*.pyi")):
            fixed = fix_source(stub.read_text())
            ast.parse(fixed, filename=str(stub))  # a syntax error here is a new generator bug: fail loudly
            path = target / stub.relative_to(source)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(fixed)
            written.append(path)
        (target / "py.typed").write_text("")
    return written


def main(argv: list[str]) -> None:
    if len(argv) != 1:
        raise SystemExit(__doc__)
    files = write_fixed_stubs(Path(argv[0]))
    print(f"{len(files)} TensorRT stub files for mypy in {argv[0]}")


if __name__ == "__main__":
    main(sys.argv[1:])
