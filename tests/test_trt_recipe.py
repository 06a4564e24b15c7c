"""TensorRT without TensorRT: the build recipe per version (flags, profile, trtexec), the DLA profile, and the fit rule."""

from __future__ import annotations

import pytest

from memgaze.errors import MemgazeError
from memgaze.manifest import EngineEntry
from memgaze.trt.build import dla_summary, network_flags
from memgaze.trt.fit import Machine, mismatch, plan_name, timing_cache_name
from memgaze.trt.probe import probe_machine, tensorrt_module
from memgaze.trt.recipe import Recipe, TrtVersion, bundle_inputs

INPUTS = bundle_inputs(224, 224, personalized=True)


def recipe(version: str, precision: str = "int8", dla_core: int | None = None, qdq: bool = True) -> Recipe:
    return Recipe(onnx="model.int8.onnx" if qdq else "model.onnx", precision=precision, version=TrtVersion.parse(version), qdq=qdq, dla_core=dla_core)


@pytest.mark.parametrize(
    ("version", "flags", "strongly_typed", "trtexec_flag"),
    [("8.6.1", ["INT8"], False, "--int8"), ("10.3.0", [], True, "--stronglyTyped"), ("11.0", [], True, None)],
)
def test_qdq_int8_per_version(version: str, flags: list[str], strongly_typed: bool, trtexec_flag: str | None) -> None:
    built = recipe(version)
    assert built.builder_flags == flags and built.strongly_typed is strongly_typed and built.plan_precision == "int8"
    args = built.trtexec_args(INPUTS, "model.plan", "timing.cache")
    precision_flags = [a for a in args if a in ("--int8", "--fp16", "--stronglyTyped", "--best")]
    assert precision_flags == ([trtexec_flag] if trtexec_flag else [])


def test_trtexec_command_shapes_workspace_and_files() -> None:
    command = Recipe("model.int8.onnx", "int8", TrtVersion.parse("8.6"), qdq=True, workspace_gb=1).trtexec_command(INPUTS, "p.plan", "t.cache")
    assert command.startswith("trtexec --onnx=model.int8.onnx --int8 ")
    assert "--minShapes=image:1x224x224x3,user:1" in command and "--optShapes=image:1x224x224x3,user:1" in command
    assert "--maxShapes=image:8x224x224x3,user:8" in command and "--memPoolSize=workspace:1024" in command
    assert command.endswith("--timingCacheFile=t.cache --saveEngine=p.plan")
    plain = recipe("10.3", "fp32", qdq=False).trtexec_command(bundle_inputs(64, 96, False), "p.plan", "t.cache")
    assert "--int8" not in plain and "--stronglyTyped" not in plain and "user:" not in plain and "--maxShapes=image:8x64x96x3" in plain


def test_fp16_is_a_flag_before_11_and_refused_on_11() -> None:
    assert recipe("8.6", "fp16", qdq=False).builder_flags == ["FP16"]
    assert recipe("10.3", "fp16", qdq=False).builder_flags == ["FP16"]
    with pytest.raises(MemgazeError, match="no FP16 flag"):
        recipe("11.0", "fp16", qdq=False)


def test_dla_profile_is_static_batch_one_and_weakly_typed() -> None:
    dla = recipe("10.3", dla_core=0)
    assert dla.batches == (1, 1, 1) and not dla.strongly_typed
    assert dla.builder_flags == ["INT8", "FP16", "GPU_FALLBACK"] and dla.plan_precision == "int8+fp16"
    assert all(shapes == ((1, 224, 224, 3),) * 3 or shapes == ((1,),) * 3 for shapes in dla.profile(INPUTS).values())
    args = dla.trtexec_args(INPUTS, "p.plan", "t.cache")
    assert "--useDLACore=0" in args and "--allowGPUFallback" in args and "--maxShapes=image:1x224x224x3,user:1" in args
    with pytest.raises(MemgazeError, match="does not support DLA"):
        recipe("11.4", dla_core=0)
    with pytest.raises(MemgazeError, match="INT8 and FP16 only"):
        recipe("8.6", "fp32", dla_core=1, qdq=False)


def test_dla_summary_says_when_nothing_lands_on_dla() -> None:
    assert dla_summary({"dla": 0, "gpu": 31}).startswith("nothing runs on DLA: all 31 layers fell back to the GPU")
    assert dla_summary({"dla": 25, "gpu": 6, "engine_layers": 4}).startswith("25 layers run on DLA, 6 on the GPU")


def test_profile_refuses_dynamic_spatial_dims_and_bad_input() -> None:
    from memgaze.trt.recipe import TensorShape

    with pytest.raises(MemgazeError, match="dynamic dimension"):
        recipe("10.3").profile([TensorShape("image", (-1, -1, 224, 3))])
    with pytest.raises(MemgazeError, match="Q/DQ model"):
        Recipe("model.onnx", "int8", TrtVersion.parse("10.3"), qdq=False)
    for bad in ("9.2", "ten", "10"):
        with pytest.raises(MemgazeError):
            TrtVersion.parse(bad)


class FakeFlags:
    """Stands in for ``trt.NetworkDefinitionCreationFlag``: the members' integer values as in TensorRT."""

    EXPLICIT_BATCH = 0
    STRONGLY_TYPED = 1


class FakeTrt:
    NetworkDefinitionCreationFlag = FakeFlags


def test_network_flags_per_version() -> None:
    assert network_flags(FakeTrt, recipe("8.6")) == 1 << 0
    assert network_flags(FakeTrt, recipe("10.3")) == 1 << 1
    assert network_flags(FakeTrt, recipe("10.3", "fp32", qdq=False)) == 0
    assert network_flags(FakeTrt, recipe("11.0", "fp32", qdq=False)) == 1 << 1


def test_fit_is_compute_capability_and_tensorrt_version_never_the_gpu_name() -> None:
    here = Machine("8.7", "10.3.0.30", gpu="Orin")
    same_device_other_name = EngineEntry.from_dict(
        {"file": "a.plan", "precision": "int8", "gpu": "Orin (nvgpu)", "compute_capability": [8, 7], "tensorrt": "10.3.0"}
    )
    assert mismatch(same_device_other_name, here) is None
    other_arch = EngineEntry.from_dict({"file": "b.plan", "precision": "int8", "compute_capability": "sm_80", "tensorrt": "10.3.0"})
    assert mismatch(other_arch, here) == "b.plan was built for compute capability 8.0 (this GPU is 8.7)"
    old_trt = EngineEntry.from_dict({"file": "c.plan", "precision": "int8", "compute_capability": "8.7", "tensorrt": "8.6.2"})
    assert "TensorRT 8.6.2 (this one is 10.3.0.30)" in str(mismatch(old_trt, here))


def test_plan_and_cache_names() -> None:
    here = Machine("8.7", "10.3.0.30")
    assert plan_name(here, "int8", "0123456789abcdef") == "model.sm87.trt10.3.0.int8.01234567.plan"
    assert plan_name(here, "int8+fp16", "ff" * 32, dla_core=1) == "model.sm87.trt10.3.0.int8-fp16.dla1.ffffffff.plan"
    assert timing_cache_name(here) == "timing.sm87.gpu.trt10.3.0.cache"
    nano, agx = Machine("8.7", "10.3.0", gpu="Orin Nano 8GB"), Machine("8.7", "10.3.0", gpu="NVIDIA Jetson AGX Orin")
    assert timing_cache_name(nano) == "timing.sm87.orin-nano-8gb.trt10.3.0.cache"
    assert timing_cache_name(nano) != timing_cache_name(agx)  # one compute capability, two GPUs: two caches


def test_a_dla_plan_fits_only_where_that_dla_core_exists() -> None:
    plan = EngineEntry.from_dict({"file": "d.plan", "precision": "int8+fp16", "compute_capability": "8.7",
                                  "tensorrt": "10.3.0", "dla_core": 1})
    assert mismatch(plan, Machine("8.7", "10.3.0", gpu="AGX Orin", dla_cores=2)) is None
    assert mismatch(plan, Machine("8.7", "10.3.0", gpu="Orin Nano", dla_cores=0)) == (
        "d.plan was built for DLA core 1 (this device has 0 DLA core(s))")
    assert mismatch(plan, Machine("8.7", "10.3.0", dla_cores=1)) is not None  # cores 0 only
    gpu_plan = EngineEntry.from_dict({"file": "g.plan", "precision": "int8", "compute_capability": "8.7", "tensorrt": "10.3.0"})
    assert mismatch(gpu_plan, Machine("8.7", "10.3.0", dla_cores=0)) is None


def test_no_tensorrt_here_is_reported_not_raised() -> None:
    """The tensorrt-stubs package makes `import tensorrt` succeed without a builder: that is no TensorRT."""
    try:
        import tensorrt

        has_builder = hasattr(tensorrt, "Builder")
    except ImportError:
        has_builder = False
    assert (tensorrt_module() is not None) == has_builder
    machine, why = probe_machine()
    assert (machine is None) == (not has_builder or why != "")
    if machine is None:
        assert why
