"""Lay the source out as Python imports it, so that static tools see every module: ``make typecheck`` runs mypy on it.

setup.cfg's ``package_dir`` maps the top-level ``train/``, ``export/``, ``runtime/`` and ``benchmarks/`` folders into
``memgaze.*``; mypy (and any reader of the source tree) cannot follow that mapping. This writes OUT_DIR/memgaze/ as a
tree of symbolic links, one per module file, placed where its import name says, from that same ``package_dir``, so the
mapping is stated once. Errors are reported on the link's path, which names the module; the line numbers are the
source's.

    python tools/typed_tree.py OUT_DIR
"""

from __future__ import annotations

import configparser
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def package_dirs(setup_cfg: Path) -> dict[str, Path]:
    """``{package: source folder}`` from setup.cfg's ``[options] package_dir``, e.g. ``{"memgaze.bench": ROOT/benchmarks}``."""
    config = configparser.ConfigParser()
    config.read(setup_cfg)
    pairs = (line.split("=") for line in config["options"]["package_dir"].strip().splitlines())
    return {name.strip(): ROOT / folder.strip() for name, folder in pairs}


def link_tree(out: Path, dirs: dict[str, Path]) -> int:
    """Replace ``out`` with links to every ``.py`` file (and ``py.typed``) under each mapped folder; returns their count.

    A package's own folder is walked without the subfolders another mapping claims, so each file is linked once."""
    if out.exists():
        shutil.rmtree(out)
    claimed = set(dirs.values())
    count = 0
    for package, folder in dirs.items():
        target = out.joinpath(*package.split("."))
        for source in sorted(folder.rglob("*")):
            relative = source.relative_to(folder)
            if source.suffix != ".py" and source.name != "py.typed":
                continue
            if any(parent in claimed and parent != folder for parent in source.parents) or "__pycache__" in relative.parts:
                continue
            link = target / relative
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(source)
            count += 1
    return count


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit("usage: python tools/typed_tree.py OUT_DIR")
    count = link_tree(Path(sys.argv[1]), package_dirs(ROOT / "setup.cfg"))
    print(f"{count} modules linked under {sys.argv[1]}")


if __name__ == "__main__":
    main()
