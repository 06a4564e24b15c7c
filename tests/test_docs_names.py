"""The names the documentation gives exist in the code: backticked repository paths and ``memgaze.x.y`` names.

Every ``docs/*.md`` page and ``README.md`` is read. In each backticked span:

- a repository path (a first folder that is tracked at the top of the repository, e.g. ``runtime/sources.py``,
  ``benchmarks/README.md``, ``memgaze/builtin/recipe.json``) must exist, relative to the repository root;
- any other ``*.py`` name (``stages/teacher.py``, ``cli.py``: the docs name files inside a folder they just
  named) must be a file of that path somewhere in the repository's source folders;
- a dotted ``memgaze.a.b`` name must import (its longest importable module) and resolve by ``getattr``.

Placeholders are not names: a span with ``<``, ``*``, ``{`` or ``…`` in the path (``benchmarks/results/<machine>/``),
and paths under folders that runs create (``runs/``, ``OUT/``) are skipped.
"""

from __future__ import annotations

import importlib
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]
# Top-level folders whose files the docs name as repository paths.
REPO_FOLDERS = ("memgaze", "train", "export", "runtime", "benchmarks", "tools", "tests", "docs", "requirements",
                "calib_data", ".ci")
SOURCE_FOLDERS = ("memgaze", "train", "export", "runtime", "benchmarks", "tools", "tests")
REPO_FILES = ("README.md", "Makefile", "setup.cfg", "pyproject.toml", "mkdocs.yml", "MANIFEST.in")

SPAN = re.compile(r"`([^`\n]+)`")
DOTTED = re.compile(r"(?<![\w.-])(memgaze(?:\.[A-Za-z_]\w*)+)")
PY_FILE = re.compile(r"(?<![\w./-])((?:[\w-]+/)*[\w-]+\.py)\b")
PLACEHOLDER = re.compile(r"[<>*{}…]|\.\.\.")
LINK = re.compile(r"\]\(([^)\s#]+)(?:#[^)\s]*)?\)")


def spans() -> list[tuple[str, str]]:
    """(page name, backticked text) for every span of every page."""
    found = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        found += [(page.name, span) for span in SPAN.findall(text)]
    return found


def repo_paths(span: str) -> list[str]:
    """Repository paths named in ``span`` (whitespace-separated words whose first folder is a repository folder)."""
    paths = []
    for word in re.split(r"[\s,;()\[\]=\"']+", span):
        word = word.rstrip(".:")
        if ":" in word:  # stages/__init__.py:run
            word = word.split(":")[0]
        if "/" not in word and word not in REPO_FILES:
            continue
        if PLACEHOLDER.search(word) or "://" in word:
            continue
        first = word.split("/")[0]
        if first in REPO_FOLDERS or word in REPO_FILES:
            paths.append(word)
    return paths


@lru_cache(maxsize=None)
def source_files() -> frozenset[str]:
    """Every file under the source folders, as paths relative to each ancestor folder inside them."""
    names: set[str] = set()
    for folder in SOURCE_FOLDERS:
        for path in (ROOT / folder).rglob("*.py"):
            parts = path.relative_to(ROOT).parts
            names.update("/".join(parts[i:]) for i in range(len(parts)))
    return frozenset(names)


def py_names(span: str) -> list[str]:
    """``*.py`` names in ``span`` that are not repository paths (checked by :func:`repo_paths`)."""
    if PLACEHOLDER.search(span):
        return []
    return [name for name in PY_FILE.findall(span) if name.split("/")[0] not in REPO_FOLDERS]


def resolve(dotted: str) -> Any:
    """Import the longest module prefix of ``dotted`` and ``getattr`` the rest; raise when it does not exist."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        name = ".".join(parts[:cut])
        try:
            value: Any = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and not name.startswith(exc.name) and not exc.name.startswith(name):
                raise  # the module exists but needs something not installed: say so, not "missing"
            continue
        for attr in parts[cut:]:
            value = getattr(value, attr)
        return value
    raise ModuleNotFoundError(dotted)


def collected() -> tuple[list[tuple[str, str]], list[tuple[str, str]], list[tuple[str, str]]]:
    paths, pys, dotted = set(), set(), set()
    for page, span in spans():
        paths.update((page, p) for p in repo_paths(span))
        pys.update((page, p) for p in py_names(span))
        dotted.update((page, d) for d in DOTTED.findall(span))
    return sorted(paths), sorted(pys), sorted(dotted)


PATHS, PY_NAMES, DOTTED_NAMES = collected()


def test_pages_are_found() -> None:
    assert len(PAGES) > 5 and PATHS and DOTTED_NAMES


def test_repository_paths_exist() -> None:
    missing = [f"{page}: `{path}`" for page, path in PATHS if not (ROOT / path).exists()]
    assert not missing, "paths named in the docs that do not exist:\n" + "\n".join(missing)


def test_python_file_names_exist() -> None:
    missing = [f"{page}: `{name}`" for page, name in PY_NAMES if name not in source_files()]
    assert not missing, "Python files named in the docs that do not exist:\n" + "\n".join(missing)


def test_readme_links_exist() -> None:
    """README.md is read on GitHub and PyPI, outside mkdocs (whose --strict build checks the docs' own links)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    targets = [t for t in LINK.findall(text) if "://" not in t and not t.startswith("mailto:")]
    missing = [t for t in targets if not (ROOT / t).exists()]
    assert targets and not missing, f"README.md links to missing files: {missing}"


@pytest.mark.parametrize("dotted", sorted({name for _, name in DOTTED_NAMES}))
def test_dotted_names_resolve(dotted: str) -> None:
    try:
        resolve(dotted)
    except (ImportError, AttributeError) as exc:
        pages = sorted({page for page, name in DOTTED_NAMES if name == dotted})
        pytest.fail(f"`{dotted}` (in {', '.join(pages)}) does not resolve: {exc}")
