"""Where a bundle's TensorRT plans live: in the bundle, or, for a bundle this user cannot write (the built-in
model in a read-only site-packages, a bundle on a read-only image), in the user cache.

A writable bundle keeps its plans beside its ONNX files and records them in ``manifest.json``. A read-only
one gets ``$XDG_CACHE_HOME/memgaze/plans/<first 16 hex of the manifest's sha256>/``: the plan files, the
timing cache, and ``engines.json`` (the same entries and checksums the manifest would hold). The manifest's
checksum names the folder, so another bundle, or another version of this one, never sees these plans;
the fit rule is the same wherever a plan is kept.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Callable, Sequence

from memgaze.atomic import write_json
from memgaze.errors import fail
from memgaze.manifest import MANIFEST_NAME, EngineEntry, file_entries, locked, sha256_file
from memgaze.user_cache import user_cache_dir

ENGINES_NAME = "engines.json"


def writable(folder: Path) -> bool:
    """Whether this process may add files to ``folder`` (permissions and read-only mounts both count)."""
    return os.access(folder, os.W_OK | os.X_OK)


def plans_folder(root: Path) -> Path:
    """``root`` when it is writable, else this bundle's folder in the user cache (not created here)."""
    if writable(root):
        return root
    return user_cache_dir("plans", sha256_file(root / MANIFEST_NAME)[:16])


def read_engines(folder: Path) -> list[EngineEntry]:
    """The plans registered in ``folder/engines.json``, each checked against its recorded sha256 (none: [])."""
    path = folder / ENGINES_NAME
    if not path.is_file():
        return []
    try:
        raw = json.loads(path.read_text())
        entries = [EngineEntry.from_dict(e) for e in raw["engines"]]
        files = raw["files"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        fail(f"{path} is not a memgaze plan registry ({type(exc).__name__}); delete {folder} to rebuild its plans")
    for entry in entries:
        plan = folder / entry.file
        if entry.file not in files or not plan.is_file() or sha256_file(plan) != files[entry.file]["sha256"]:
            fail(f"{plan} does not match the sha256 in {path}; delete it and rebuild with memgaze-engine")
    return entries


def update_engines(
    folder: Path, change: Callable[[list[EngineEntry]], list[EngineEntry]], added: Sequence[str] = (), removed: Sequence[str] = ()
) -> list[EngineEntry]:
    """Re-read ``folder/engines.json`` under a lock, apply ``change``, checksum ``added`` plan files, drop ``removed``
    ones, and replace the file atomically (the plans named must already be in place)."""
    folder.mkdir(parents=True, exist_ok=True)
    with locked(folder):
        path = folder / ENGINES_NAME
        raw = json.loads(path.read_text()) if path.is_file() else {"engines": [], "files": {}}
        entries = change([EngineEntry.from_dict(e) for e in raw["engines"]])
        files = {k: v for k, v in raw["files"].items() if k not in removed}
        files.update(file_entries(folder, list(added)))
        write_json(path, {"engines": [dataclasses.asdict(e) for e in entries], "files": dict(sorted(files.items()))})
    return entries
