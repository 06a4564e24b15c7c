"""The deploy bundle's ``manifest.json``: schema, checksums, reading and verification.

Shared by ``memgaze.export`` (writes it) and ``memgaze.runtime`` (reads it); plain JSON only,
so the runtime needs neither torch nor onnx.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from memgaze.errors import fail

SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.json"


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def file_entries(folder: Path, names: list[str]) -> dict[str, dict[str, Any]]:
    """``{name: {"sha256", "bytes"}}`` for each named file in ``folder``."""
    return {
        name: {"sha256": sha256_file(folder / name), "bytes": (folder / name).stat().st_size}
        for name in sorted(names)
    }


def read_manifest(bundle: str | Path) -> dict[str, Any]:
    """Read and sanity-check ``bundle/manifest.json``; one-line error when it is not a bundle."""
    folder = Path(bundle)
    path = folder / MANIFEST_NAME
    if not folder.is_dir():
        fail(f"model bundle {folder} does not exist (make one with memgaze-export)")
    if not path.is_file():
        fail(f"{folder} is not a deploy bundle: it has no {MANIFEST_NAME} (make one with memgaze-export)")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        fail(f"{path} is not valid JSON: {exc}")
    if not isinstance(manifest, dict) or "files" not in manifest or "schema_version" not in manifest:
        fail(f"{path} is not a memgaze manifest (no schema_version/files)")
    if manifest["schema_version"] > SCHEMA_VERSION:
        fail(
            f"{path} has schema version {manifest['schema_version']}, newer than this memgaze "
            f"understands ({SCHEMA_VERSION}); upgrade memgaze"
        )
    return manifest


def verify_files(bundle: str | Path, manifest: dict[str, Any], names: list[str] | None = None) -> None:
    """Check the sha256 of the bundle's files (all, or ``names``); refuse on any mismatch."""
    folder = Path(bundle)
    for name, entry in manifest["files"].items():
        if names is not None and name not in names:
            continue
        path = folder / name
        if not path.is_file():
            fail(f"bundle {folder} is missing {name}, listed in its manifest")
        if sha256_file(path) != entry["sha256"]:
            fail(f"bundle {folder}: {name} does not match the sha256 in its manifest; refusing to load it")
