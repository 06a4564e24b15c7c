"""How a plan is built, per TensorRT version: network and builder flags, the optimization profile and
the equivalent ``trtexec`` command, all from one :class:`Recipe`.

- TensorRT 8.5/8.6 (JetPack 5): explicit-batch network; a Q/DQ graph needs ``BuilderFlag.INT8`` / ``--int8``.
- TensorRT 10.x (JetPack 6): Q/DQ graphs are built strongly typed (``--stronglyTyped``), FP16 by flag;
  a DLA build stays weakly typed (INT8 + FP16 flags), as DLA needs.
- TensorRT 11.x: every network is strongly typed; there are no precision flags (and no DLA).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from memgaze.errors import fail
from memgaze.precision import check_precision

MAX_BATCH = 8  # the largest batch a plan takes by default, and the runtime's frames per engine call
SUPPORTED = ((8, 5), (8, 6), (10, None), (11, None))  # (major, minor or None for any); 8.5: JetPack 5.1
ProfileShapes = tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]


@dataclass(frozen=True)
class TrtVersion:
    """A TensorRT version, e.g. ``10.3.0``."""

    major: int
    minor: int
    patch: int = 0

    @classmethod
    def parse(cls, text: str) -> TrtVersion:
        """``"10.3.0.30"`` / ``"8.6"`` → TrtVersion; one-line error for anything else or an unsupported version."""
        parts = str(text).strip().split(".")
        try:
            numbers = [int(p) for p in parts[:3]]
        except ValueError:
            fail(f"{text!r} is not a TensorRT version (like 8.6, 10.3 or 11.0)")
        if len(numbers) < 2:
            fail(f"{text!r} is not a TensorRT version (like 8.6, 10.3 or 11.0)")
        version = cls(numbers[0], numbers[1], numbers[2] if len(numbers) > 2 else 0)
        if not any(version.major == major and minor in (None, version.minor) for major, minor in SUPPORTED):
            fail(f"TensorRT {version} is not supported: memgaze builds plans with TensorRT 8.5, 8.6, 10.x and 11.x")
        return version

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"

    @property
    def always_strongly_typed(self) -> bool:
        """TensorRT 11 builds every network strongly typed and has no precision flags."""
        return self.major >= 11

    @property
    def has_strongly_typed(self) -> bool:
        return self.major >= 10

    @property
    def needs_explicit_batch_flag(self) -> bool:
        """8.6 still has implicit-batch networks; from 10 every network is explicit-batch."""
        return self.major < 10

    @property
    def has_progress_monitor(self) -> bool:
        return self.major >= 10


@dataclass(frozen=True)
class TensorShape:
    """A network input as the parser sees it: name and shape, ``-1`` for a dynamic dimension."""

    name: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class Recipe:
    """Everything that decides a plan: source ONNX, precision, TensorRT version, DLA core, workspace, batch."""

    onnx: str
    precision: str
    version: TrtVersion
    qdq: bool  # the ONNX holds Q/DQ nodes (the INT8 model)
    workspace_gb: float = 2.0
    dla_core: int | None = None
    max_batch: int = MAX_BATCH

    def __post_init__(self) -> None:
        check_precision(self.precision)
        if self.precision == "int8" and not self.qdq:
            fail("an int8 plan is built from the bundle's Q/DQ model (model.int8.onnx), which this bundle lacks; re-export with --int8")
        if self.version.always_strongly_typed and self.precision == "fp16":
            fail(
                f"TensorRT {self.version} has no FP16 flag (every network is strongly typed): build --precision int8 "
                "from the Q/DQ model, or fp32"
            )
        if self.dla_core is not None:
            if self.version.always_strongly_typed:
                fail(f"TensorRT {self.version} does not support DLA; drop --dla-core")
            if self.precision == "fp32":
                fail("DLA runs INT8 and FP16 only: use --precision int8 or fp16 with --dla-core")
        if self.workspace_gb <= 0:
            fail(f"--workspace must be positive (GB), not {self.workspace_gb}")

    @property
    def strongly_typed(self) -> bool:
        """Q/DQ graphs are built strongly typed where the version can, except for DLA (which needs weak typing on 10.x)."""
        if self.version.always_strongly_typed:
            return True
        return self.version.has_strongly_typed and self.qdq and self.precision == "int8" and self.dla_core is None

    @property
    def builder_flags(self) -> list[str]:
        """Names of the ``BuilderFlag`` members to set (never one that this TensorRT version removed)."""
        flags = []
        if not self.strongly_typed:
            flags += ["INT8"] * (self.precision == "int8") + ["FP16"] * (self.precision == "fp16" or self.dla_core is not None)
        if self.dla_core is not None:
            flags.append("GPU_FALLBACK")
        return flags

    @property
    def plan_precision(self) -> str:
        """What the manifest records: ``int8``, ``fp16``, ``fp32`` or ``int8+fp16`` (a DLA build lets FP16 fill in)."""
        return "+".join(dict.fromkeys([self.precision, *(["fp16"] if "FP16" in self.builder_flags else [])]))

    @property
    def batches(self) -> tuple[int, int, int]:
        """(min, opt, max) batch: static 1 for DLA, else 1..max_batch, tuned for 1 (a live camera)."""
        return (1, 1, 1) if self.dla_core is not None else (1, 1, self.max_batch)

    def profile(self, inputs: list[TensorShape]) -> dict[str, ProfileShapes]:
        """``{input: (min, opt, max)}`` with the batch (first) dimension set; other dimensions must be static."""
        low, opt, high = self.batches
        shapes: dict[str, ProfileShapes] = {}
        for tensor in inputs:
            if any(d < 0 for d in tensor.shape[1:]):
                fail(f"input {tensor.name} has a dynamic dimension other than the batch: {list(tensor.shape)}")
            rest = tuple(int(d) for d in tensor.shape[1:])
            shapes[tensor.name] = ((low, *rest), (opt, *rest), (high, *rest))
        return shapes

    def trtexec_args(self, inputs: list[TensorShape], plan: str, timing_cache: str) -> list[str]:
        """The ``trtexec`` arguments that build the same plan (run inside the bundle folder)."""
        profile = self.profile(inputs)

        def spec(which: int) -> str:
            return ",".join(f"{name}:{'x'.join(str(d) for d in shapes[which])}" for name, shapes in profile.items())

        flags = {"INT8": "--int8", "FP16": "--fp16", "GPU_FALLBACK": "--allowGPUFallback"}
        return [
            "trtexec", f"--onnx={self.onnx}",
            *(["--stronglyTyped"] if self.strongly_typed and not self.version.always_strongly_typed else []),
            *[flags[f] for f in self.builder_flags if f != "GPU_FALLBACK"],
            f"--minShapes={spec(0)}", f"--optShapes={spec(1)}", f"--maxShapes={spec(2)}",
            f"--memPoolSize=workspace:{int(self.workspace_gb * 1024)}",
            *([f"--useDLACore={self.dla_core}", "--allowGPUFallback"] if self.dla_core is not None else []),
            f"--timingCacheFile={timing_cache}", f"--saveEngine={plan}",
        ]

    def trtexec_command(self, inputs: list[TensorShape], plan: str, timing_cache: str) -> str:
        return shlex.join(self.trtexec_args(inputs, plan, timing_cache))


def bundle_inputs(height: int, width: int, personalized: bool) -> list[TensorShape]:
    """The graph contract's inputs (docs/design.md, "The exported graph"), for when no parsed network is at hand (``--print-trtexec``)."""
    inputs = [TensorShape("image", (-1, height, width, 3))]
    return inputs + [TensorShape("user", (-1,))] if personalized else inputs
