"""The deploy bundle's ``manifest.json``: one typed schema, checksums, reading, verification and atomic updates.

``memgaze.export`` writes it; ``memgaze.runtime`` and ``memgaze-engine`` read it and register the
TensorRT plans they build. Plain JSON only, so the runtime needs neither torch nor onnx.
Schema 1 (before plans were built on the device) is read and upgraded in memory.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from memgaze.atomic import write_json
from memgaze.errors import fail

SCHEMA_VERSION = 2
SCHEMA_KEYS = ("schema_version", "schema")  # what this code writes, and the name a person (or a newer memgaze) may use
MANIFEST_NAME = "manifest.json"
LOCK_NAME = ".manifest.lock"


def check_schema(raw: dict[str, Any], where: str) -> None:
    """One-line refusal of a manifest whose schema is newer than this code's, under any of :data:`SCHEMA_KEYS`
    (``"schema": 3`` as much as ``"schema_version": 3``, ``"3"`` or ``2.1``), or not a version number at all."""
    for key in SCHEMA_KEYS:
        if key not in raw:
            continue
        value = raw[key]
        try:
            number = math.nan if isinstance(value, bool) else float(value)
        except (TypeError, ValueError):
            number = math.nan
        if not math.isfinite(number):
            fail(f"{where}: {key} {value!r} is not a schema version number")
        if number > SCHEMA_VERSION:
            fail(f"{where} has schema version {value}, newer than this memgaze understands ({SCHEMA_VERSION}); "
                 "upgrade memgaze (pip install --upgrade memgaze)")


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


def compute_capability(value: Any) -> str:
    """A compute capability given as "8.7", [8, 7], "sm_87" or "87" as "8.7"."""
    if isinstance(value, (list, tuple)):
        return ".".join(str(int(v)) for v in value)
    text = str(value).removeprefix("sm_")
    return text if "." in text or len(text) != 2 else f"{text[0]}.{text[1]}"


@dataclass
class EngineEntry:
    """A TensorRT plan in the bundle. It fits a machine with the same compute capability and TensorRT version."""

    file: str
    precision: str
    compute_capability: str
    tensorrt: str
    gpu: str = ""  # the GPU's name as the builder saw it: shown to people, never compared
    built: str = ""
    build_seconds: float = 0.0
    source: str = ""  # the ONNX file it was built from
    max_batch: int = 1
    dla_core: int | None = None
    layers: dict[str, int] | None = None  # {"dla": n, "gpu": n} for DLA builds
    accuracy: dict[str, Any] | None = None  # the gate vs the bundle's FP32 samples

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> EngineEntry:
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in raw.items() if k in known}
        values["compute_capability"] = compute_capability(raw.get("compute_capability", ""))
        values["tensorrt"] = str(raw.get("tensorrt", ""))
        values.setdefault("precision", "fp32")
        return cls(**values)

    def precisions(self) -> list[str]:
        """``"int8+fp16"`` → ``["int8", "fp16"]``."""
        return self.precision.split("+")


@dataclass
class GateSamples:
    """Held-out frames at the model's size with their FP32 outputs (one ``.npz``), for checking a plan on the device."""

    file: str
    frames: int
    source: str


@dataclass
class Manifest:
    """``manifest.json`` (keys in docs/internals.md); keys this schema does not name are kept in ``extra``."""

    input: dict[str, Any]
    map_size: list[int]
    models: dict[str, str]
    files: dict[str, dict[str, Any]]
    schema_version: int = SCHEMA_VERSION
    created: str = ""
    memgaze_version: str = ""
    source_checkpoint: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    users: list[str] = field(default_factory=lambda: ["generic"])
    personalized: bool = False
    normalization: dict[str, Any] | None = None
    precisions: list[str] = field(default_factory=list)
    onnxruntime_cpu: dict[str, str] = field(default_factory=dict)
    engines: list[EngineEntry] = field(default_factory=list)
    calibration: dict[str, Any] | None = None
    accuracy: dict[str, Any] | None = None
    gate_samples: GateSamples | None = None
    tensorrt_check: dict[str, Any] = field(default_factory=dict)  # per ONNX file meant for TensorRT: its parser-rule check
    card: dict[str, str] = field(default_factory=dict)  # the model card: "name", "licence", "file" (MODEL.md), "map" (what the generic heatmap is)
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], where: str = MANIFEST_NAME) -> Manifest:
        """Parse (and upgrade from schema 1) a manifest; one-line error for a foreign or newer file."""
        if not isinstance(raw, dict):
            fail(f"{where} is not a memgaze manifest (not a JSON object)")
        check_schema(raw, where)
        if "files" not in raw or "schema_version" not in raw:
            fail(f"{where} is not a memgaze manifest (no schema_version/files)")
        for key in ("input", "map_size", "models"):
            if key not in raw:
                fail(f"{where} has no {key!r}; re-export the bundle with memgaze-export")
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        values = {k: v for k, v in raw.items() if k in names}
        values["schema_version"] = SCHEMA_VERSION
        values["engines"] = [EngineEntry.from_dict(e) for e in raw.get("engines") or []]
        samples = raw.get("gate_samples")
        values["gate_samples"] = GateSamples(**samples) if samples else None
        values["onnxruntime_cpu"] = raw.get("onnxruntime_cpu") or {}
        return cls(**values, extra={k: v for k, v in raw.items() if k not in names})

    def to_dict(self) -> dict[str, Any]:
        """The JSON object (``files`` last, as people read it)."""
        body = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in ("extra", "files")}
        body["engines"] = [dataclasses.asdict(e) for e in self.engines]
        body["gate_samples"] = dataclasses.asdict(self.gate_samples) if self.gate_samples else None
        return {**body, **self.extra, "files": self.files}

    @property
    def input_size(self) -> tuple[int, int]:
        """Model input ``(H, W)``."""
        return int(self.input["height"]), int(self.input["width"])

    @property
    def model_name(self) -> str:
        """The model card's name, or "" when the bundle has no card."""
        return self.card.get("name", "")

    @property
    def licence(self) -> str:
        """The model card's licence, or "" when the bundle has no card."""
        return self.card.get("licence", "")


def read_manifest(bundle: str | Path) -> Manifest:
    """Read and sanity-check ``bundle/manifest.json``; one-line error when it is not a bundle."""
    folder = Path(bundle)
    path = folder / MANIFEST_NAME
    if not folder.is_dir():
        fail(f"model bundle {folder} does not exist (make one with memgaze-export)")
    if not path.is_file():
        fail(f"{folder} is not a deploy bundle: it has no {MANIFEST_NAME} (make one with memgaze-export)")
    try:
        raw = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        fail(f"{path} is not valid JSON: {exc}")
    return Manifest.from_dict(raw, str(path))


def write_manifest(folder: Path, manifest: Manifest) -> Path:
    """Write ``folder/manifest.json`` atomically."""
    path = folder / MANIFEST_NAME
    write_json(path, manifest.to_dict())
    return path


def verify_files(bundle: str | Path, manifest: Manifest, names: list[str] | None = None) -> None:
    """Check the sha256 of the bundle's files (all, or ``names``); refuse on any mismatch."""
    folder = Path(bundle)
    for name, entry in manifest.files.items():
        if names is not None and name not in names:
            continue
        path = folder / name
        if not path.is_file():
            fail(f"bundle {folder} is missing {name}, listed in its manifest")
        if sha256_file(path) != entry["sha256"]:
            fail(f"bundle {folder}: {name} does not match the sha256 in its manifest; refusing to load it")


@contextlib.contextmanager
def locked(folder: Path) -> Iterator[None]:
    """An exclusive lock on a folder's plan registry (two builders on one bundle take turns)."""
    try:
        handle = open(folder / LOCK_NAME, "a+")
    except OSError as exc:
        fail(f"cannot update the plan registry in {folder}: {exc.strerror or exc}")
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def update_manifest(
    bundle: str | Path, change: Callable[[Manifest], None], added: Sequence[str] = (), removed: Sequence[str] = ()
) -> Manifest:
    """Re-read the manifest under a lock, apply ``change``, checksum ``added`` files, drop ``removed`` ones,
    and replace ``manifest.json`` atomically. The files named must already be in place."""
    folder = Path(bundle)
    with locked(folder):
        manifest = read_manifest(folder)
        change(manifest)
        for name in removed:
            manifest.files.pop(name, None)
        manifest.files.update(file_entries(folder, list(added)))
        manifest.files = dict(sorted(manifest.files.items()))
        write_manifest(folder, manifest)
    return manifest
