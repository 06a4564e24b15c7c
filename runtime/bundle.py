"""The deploy bundle as the runtime sees it: manifest, checksums, and which model file to load."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from memgaze.errors import fail
from memgaze.manifest import EngineEntry, Manifest, read_manifest, verify_files
from memgaze.precision import precision_rank
from memgaze.runtime.plan_store import plans_folder, read_engines


@dataclass(frozen=True)
class Bundle:
    """A verified deploy bundle (``manifest.json`` + the files it lists). ``plans``: where TensorRT plans built
    for it are kept, ``root`` itself unless it is read-only (:mod:`memgaze.runtime.plan_store`); ``cached_engines``:
    the plans registered there when that is not ``root``."""

    root: Path
    manifest: Manifest
    plans: Path
    cached_engines: tuple[EngineEntry, ...] = ()

    @property
    def input_size(self) -> tuple[int, int]:
        """Model input ``(H, W)``."""
        return self.manifest.input_size

    @property
    def map_size(self) -> tuple[int, int]:
        """Heatmap ``(h, w)``."""
        h, w = self.manifest.map_size
        return int(h), int(w)

    @property
    def users(self) -> list[str]:
        return list(self.manifest.users or ["generic"])

    @property
    def personalized(self) -> bool:
        """True when the graph has the ``user`` input."""
        return bool(self.manifest.personalized)

    @property
    def onnx_precisions(self) -> list[str]:
        return sorted(self.manifest.models, key=precision_rank)

    @property
    def engines(self) -> list[EngineEntry]:
        """Every registered plan: the manifest's, then those of the user cache for a read-only bundle."""
        return [*self.manifest.engines, *self.cached_engines]

    def plan_path(self, entry: EngineEntry) -> Path:
        """The file of a registered plan."""
        return self.root / entry.file if entry in self.manifest.engines else self.plans / entry.file

    def onnx_model(self, precision: str | None, cpu: bool = False) -> tuple[Path, str]:
        """The ONNX file for ``precision`` (None: INT8, else the best available) and its precision.

        ``cpu``: for an ONNX Runtime session on the CPU provider alone, the bundle's CPU-oriented
        variant (manifest ``onnxruntime_cpu``, e.g. ``model.int8.ort.onnx``) where it has one."""
        available = self.onnx_precisions
        if not available:
            fail(f"bundle {self.root} lists no ONNX model in its manifest")
        chosen = precision or available[0]
        if chosen not in available:
            fail(
                f"bundle {self.root} has no {chosen} ONNX model (it has: {', '.join(available)}); "
                f"pick one with --precision"
            )
        variants = self.manifest.onnxruntime_cpu if cpu else {}
        return self.root / variants.get(chosen, self.manifest.models[chosen]), chosen

    def user_index(self, name: str | None) -> int | None:
        """Index of user ``name`` for the graph's ``user`` input (None when not personalized)."""
        if name is None:
            return 0 if self.personalized else None
        if not self.personalized and name != "generic":
            fail(f"bundle {self.root} is not personalized: it has no per-user heatmaps (drop --user)")
        if name not in self.users:
            fail(f"unknown user {name!r}; this bundle knows: {', '.join(self.users)}")
        return self.users.index(name) if self.personalized else None


def load_bundle(path: str | Path) -> Bundle:
    """Read ``path/manifest.json`` and verify every listed file's sha256 (refuses on mismatch), and the plans
    kept for it in the user cache when it is read-only."""
    root = Path(path)
    manifest = read_manifest(root)
    verify_files(root, manifest)
    plans = plans_folder(root)
    return Bundle(root=root, manifest=manifest, plans=plans, cached_engines=tuple(read_engines(plans)) if plans != root else ())
