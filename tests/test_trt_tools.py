"""The static TensorRT checks: the corrected stubs mypy reads, and the API check against real bindings."""

from __future__ import annotations

import ast
import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent


def tool(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


stubs = tool("trt_stubs")
api = tool("trt_api_check")


def test_fix_source_makes_pybind_signatures_valid_python() -> None:
    broken = textwrap.dedent('''
        class IPluginV2:
            def get_workspace_size(self, in: list[PluginTensorDesc], out: list[PluginTensorDesc]) -> int: ...
            def add_scale_nd(self, input: ITensor, shift: Weights = None, scale: dict[str, int] = None, channel_axis: int) -> int: ...
            def keyword_only(self, a: int = 1, *, b: int) -> None: ...
    ''')
    with pytest.raises(SyntaxError):
        ast.parse(broken)
    fixed = stubs.fix_source(broken)
    tree = ast.parse(fixed)
    methods = {f.name: f for f in ast.walk(tree) if isinstance(f, ast.FunctionDef)}
    assert [a.arg for a in methods["get_workspace_size"].args.args] == ["self", "in_", "out"]
    assert len(methods["add_scale_nd"].args.defaults) == 3  # channel_axis got "= ..."
    assert methods["keyword_only"].args.kw_defaults == [None]  # a keyword-only parameter needs no default


def test_corrected_stubs_make_mypy_catch_a_misspelled_tensorrt_method(tmp_path: Path) -> None:
    written = stubs.write_fixed_stubs(tmp_path / "stubs")
    assert (tmp_path / "stubs" / "tensorrt" / "py.typed").is_file() and all(ast.parse(p.read_text()) for p in written)
    code = tmp_path / "uses_trt.py"
    code.write_text("import tensorrt as trt\n\nbuilder = trt.Builder(trt.Logger(trt.Logger.WARNING))\nbuilder.create_netwrk(0)\n")
    env = {**os.environ, "MYPYPATH": str(tmp_path / "stubs")}
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "setup.cfg"), "--cache-dir", str(tmp_path / "cache"), str(code)],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert done.returncode == 1 and '"Builder" has no attribute "create_netwrk"' in done.stdout, done.stdout


def write(tmp_path: Path, source: str) -> Path:
    path = tmp_path / "code.py"
    path.write_text(textwrap.dedent(source))
    return path


def test_uses_follow_tensorrt_objects_and_version_markers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(api, "ROOT", tmp_path)
    path = write(tmp_path, '''
        import tensorrt as trt

        def build(network: trt.INetworkDefinition, path) -> None:
            builder = trt.Builder(trt.Logger(trt.Logger.WARNING))
            config = builder.create_builder_config()
            config.get_timing_cache().serialize()
            flag = trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH  # trt-only: 8,10
            network.num_inputs
            path.read_bytes()
    ''')
    uses = {(u.path, u.rooted, u.only) for u in api.uses_in(path)}
    assert (("Builder",), True, None) in uses and (("Logger", "WARNING"), True, None) in uses
    assert (("create_builder_config",), False, None) in uses and (("serialize",), False, None) in uses
    assert (("get_timing_cache",), False, None) in uses and (("num_inputs",), False, None) in uses
    assert (("NetworkDefinitionCreationFlag", "EXPLICIT_BATCH"), True, frozenset({8, 10})) in uses
    assert not any(u[0] == ("read_bytes",) for u in uses)  # not a TensorRT object


def test_check_version_reports_missing_names_and_respects_markers() -> None:
    uses = [
        api.Use(("NetworkDefinitionCreationFlag", "EXPLICIT_BATCH"), True, "a.py:1", frozenset({8, 10})),
        api.Use(("NetworkDefinitionCreationFlag", "STRONGLY_TYPED"), True, "a.py:2", None),
        api.Use(("create_network",), False, "a.py:3", None),
        api.Use(("creat_network",), False, "a.py:4", None),
    ]
    classes = {"NetworkDefinitionCreationFlag": ["STRONGLY_TYPED"], "Builder": ["create_network"], "BuilderFlag": ["GPU_FALLBACK"]}
    missing = api.check_version(uses, "11.4.0", classes, set(classes))
    assert missing == ["TensorRT 11.4.0: .creat_network (a.py:4)"]
    missing_86 = api.check_version(uses, "8.6.1", classes, set(classes))
    assert "TensorRT 8.6.1: trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH (a.py:1)" in missing_86
    assert "TensorRT 8.6.1: trt.BuilderFlag.INT8 (set by memgaze.trt.recipe)" in missing_86


def test_recipe_never_sets_a_flag_tensorrt_11_removed() -> None:
    assert api.recipe_flags("11.4.0") == set()
    assert api.recipe_flags("8.6.1") == {"INT8", "FP16", "GPU_FALLBACK"} == api.recipe_flags("10.3.0")


CACHE = ROOT / ".cache" / "trt-bindings"


@pytest.mark.skipif(not any(CACHE.glob("*/*.whl")), reason="no cached TensorRT bindings wheels (make trt-api-check downloads them)")
def test_code_uses_only_names_the_real_bindings_have() -> None:
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "trt_api_check.py")], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("checked against") == len(api.VERSIONS)
