"""Build a TensorRT plan from an ONNX file with TensorRT's ONNX parser (8.5/8.6, 10.x, 11.x), torch-free.

Lines that use a name only some TensorRT versions have carry a ``# trt-only: <majors>`` marker;
``tools/trt_api_check.py`` checks every other TensorRT name against every supported version's bindings.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from memgaze.errors import fail
from memgaze.trt.probe import tensorrt_module
from memgaze.trt.recipe import Recipe, TensorShape

if TYPE_CHECKING:
    import tensorrt as trt

Log = Callable[[str], None]


@dataclass
class BuiltPlan:
    """A serialized plan and what the build learned."""

    data: bytes
    seconds: float
    inputs: list[TensorShape]
    timing_cache: bytes
    layers: dict[str, int] | None  # {"dla": n, "gpu": n} for a DLA build


def network_flags(trt_module: Any, recipe: Recipe) -> int:
    """``create_network`` flags: explicit batch on 8.6, strongly typed where the recipe asks for it."""
    flags = 0
    if recipe.version.needs_explicit_batch_flag:
        flags |= 1 << int(trt_module.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)  # trt-only: 8,10
    if recipe.strongly_typed:
        flags |= 1 << int(trt_module.NetworkDefinitionCreationFlag.STRONGLY_TYPED)  # trt-only: 10,11
    return flags


def dims(shape: trt.Dims) -> tuple[int, ...]:
    """A ``trt.Dims`` as a tuple of ints (``-1`` for a dynamic dimension)."""
    return tuple(int(shape[i]) for i in range(len(shape)))


def _parse(network: trt.INetworkDefinition, logger: trt.ILogger, onnx_path: Path) -> trt.OnnxParser:
    """Parse the ONNX file into ``network``; one-line error with the parser's first complaints."""
    import tensorrt as trt

    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes(), str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(min(parser.num_errors, 3)))
        fail(f"TensorRT cannot parse {onnx_path.name}: {errors or 'unknown error'}")
    return parser


def _io(network: trt.INetworkDefinition, log: Log) -> list[TensorShape]:
    """The parsed network's inputs (and log every input and output shape, as NVIDIA's samples do)."""
    inputs = [network.get_input(i) for i in range(network.num_inputs)]
    outputs = [network.get_output(i) for i in range(network.num_outputs)]
    for kind, tensors in (("input", inputs), ("output", outputs)):
        for tensor in tensors:
            log(f"  {kind} {tensor.name}: {list(dims(tensor.shape))} {tensor.dtype}")
    return [TensorShape(t.name, dims(t.shape)) for t in inputs]


def _progress_monitor(log: Log) -> Any:
    """A ``trt.IProgressMonitor`` that logs each top-level build phase and its steps (TensorRT 10 and later)."""
    import tensorrt as trt

    class Monitor(trt.IProgressMonitor):  # trt-only: 10,11
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)  # trt-only: 10,11
            self._lock = threading.Lock()
            self._steps: dict[str, int] = {}

        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
            with self._lock:
                self._steps[phase_name] = num_steps
                if parent_phase is None:
                    log(f"  {phase_name} ({num_steps} steps)")

        def step_complete(self, phase_name: str, step: int) -> bool:
            return True

        def phase_finish(self, phase_name: str) -> None:
            with self._lock:
                self._steps.pop(phase_name, None)

    return Monitor()


def _configure(builder: trt.Builder, network: trt.INetworkDefinition, recipe: Recipe, log: Log) -> tuple[trt.IBuilderConfig, dict[str, int] | None]:
    """Builder config: workspace, precision flags, DLA placement, the profile; the DLA/GPU layer split."""
    import tensorrt as trt

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(recipe.workspace_gb * (1 << 30)))
    for flag in recipe.builder_flags:
        config.set_flag(getattr(trt.BuilderFlag, flag))
    layers = None
    if recipe.dla_core is not None:
        if recipe.dla_core >= builder.num_DLA_cores:
            fail(f"--dla-core {recipe.dla_core} requested but this device has {builder.num_DLA_cores} DLA core(s)")
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = recipe.dla_core
        on_dla = sum(bool(config.can_run_on_DLA(network.get_layer(i))) for i in range(network.num_layers))
        layers = {"dla": on_dla, "gpu": network.num_layers - on_dla}
    profile = builder.create_optimization_profile()
    for name, (low, opt, high) in recipe.profile(_io(network, log)).items():
        profile.set_shape(name, trt.Dims(list(low)), trt.Dims(list(opt)), trt.Dims(list(high)))
        log(f"  profile {name}: min {list(low)}, opt {list(opt)}, max {list(high)}")
    config.add_optimization_profile(profile)
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
    return config, layers


def build_plan(onnx_path: Path, recipe: Recipe, timing_cache: bytes, log: Log) -> BuiltPlan:
    """Parse ``onnx_path``, build the plan ``recipe`` describes, and deserialize it once (TensorRT's word that it loads)."""
    if tensorrt_module() is None:
        fail("TensorRT is not installed here (on a Jetson: sudo apt-get install python3-libnvinfer)")
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(network_flags(trt, recipe))
    parser = _parse(network, logger, onnx_path)
    inputs = _io(network, lambda _line: None)
    config, layers = _configure(builder, network, recipe, log)
    _use_timing_cache(config, timing_cache, log)
    if recipe.version.has_progress_monitor:
        config.progress_monitor = _progress_monitor(log)  # trt-only: 10,11
    started = time.monotonic()
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        fail(f"TensorRT could not build an engine from {onnx_path.name} (see the TensorRT log above)")
    seconds = time.monotonic() - started
    del parser
    data = bytes(memoryview(serialized))
    engine = trt.Runtime(logger).deserialize_cuda_engine(data)
    if engine is None:
        fail(f"TensorRT built a plan from {onnx_path.name} that it cannot load back")
    if layers is not None:
        layers["engine_layers"] = _engine_layer_count(engine)
    return BuiltPlan(data, seconds, inputs, bytes(memoryview(config.get_timing_cache().serialize())), layers)


def _use_timing_cache(config: trt.IBuilderConfig, saved: bytes, log: Log) -> None:
    """Give the build the saved timing cache; TensorRT refuses one of another device or version (or a damaged file),
    and the build then starts from an empty cache, saying so."""
    if saved:
        try:
            cache = config.create_timing_cache(saved)
            accepted = cache is not None and config.set_timing_cache(cache, False)
        except Exception as exc:  # noqa: BLE001 - TensorRT raises its own error types for a damaged cache
            log(f"  the saved timing cache is unreadable ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})")
            accepted = False
        if accepted:
            log("  timing cache: reusing the saved one")
            return
        log("  timing cache: the saved one does not match this GPU and TensorRT version; starting a new one")
    if not config.set_timing_cache(config.create_timing_cache(b""), False):
        fail("TensorRT refused an empty timing cache")


def _engine_layer_count(engine: trt.ICudaEngine) -> int:
    """How many layers the built engine has, from the engine inspector (fused DLA subgraphs count as one)."""
    import tensorrt as trt

    inspector = engine.create_engine_inspector()
    info = json.loads(inspector.get_engine_information(trt.LayerInformationFormat.JSON))
    return len(info.get("Layers", []))


def dla_summary(layers: dict[str, int]) -> str:
    """One line on where the network runs; says so plainly when nothing lands on DLA."""
    if layers["dla"] == 0:
        return f"nothing runs on DLA: all {layers['gpu']} layers fell back to the GPU (drop --dla-core, or check DLA's layer support)"
    return f"{layers['dla']} layers run on DLA, {layers['gpu']} on the GPU ({layers.get('engine_layers', '?')} engine layers after fusion)"
