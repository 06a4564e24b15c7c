"""The built-in models: installed with the package, pinned by checksum, torch-free to run, the default one used
everywhere no model is given and each by its name, and scoring their shipped held-out photos as their model cards say."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

import memgaze
from memgaze import builtin
from memgaze.manifest import read_manifest, sha256_file

BUNDLE = builtin.DEFAULT.bundle_path()
MAX_BYTES = 50 * 2**20  # each model's folder
MODELS = pytest.mark.parametrize("model", builtin.MODELS.values(), ids=list(builtin.MODELS))
TORCH_FREE = """
import sys
import memgaze
model = memgaze.load()
import cv2, glob
scores = [model.predict(cv2.imread(p)).score for p in sorted(glob.glob(sys.argv[1] + "/*.png"))]
loaded = sorted(m for m in ("torch", "onnx") if m in sys.modules)  # the auto backend may probe for TensorRT
print(len(scores), model.describe(), loaded)
"""


def card_scores(model: builtin.BuiltinModel = builtin.DEFAULT) -> dict[str, tuple[float, float]]:
    """The sample table of ``model``'s MODEL.md: photo -> (FP32, INT8) score."""
    card = (model.bundle_path() / "MODEL.md").read_text()
    rows = re.findall(r"^\| (\S+\.png) \| ([0-9.]+) \| ([0-9.]+) \|$", card, re.MULTILINE)
    return {name: (float(a), float(b)) for name, a, b in rows}


@MODELS
def test_the_manifest_is_the_pinned_one_and_every_file_matches_it(model: builtin.BuiltinModel) -> None:
    bundle = model.bundle_path()
    pinned = builtin.MANIFEST_SHA256[model.name]
    assert pinned and sha256_file(bundle / "manifest.json") == pinned
    manifest = read_manifest(bundle)
    listed = set(manifest.files)
    checkpoint = {"student.safetensors", "student.json"}
    assert {"model.onnx", "model.int8.onnx", "model.int8.ort.onnx", "gate_samples.npz", "MODEL.md"} <= listed
    assert checkpoint <= listed if model.checkpoint else not checkpoint & listed
    for name, entry in manifest.files.items():
        assert sha256_file(bundle / name) == entry["sha256"], name
    assert manifest.card == {"name": f"{model.name} v{model.version}", "licence": builtin.LICENCE, "file": "MODEL.md",
                             "map": builtin.MAP}
    assert "NON-COMMERCIAL" in manifest.licence and "NON-COMMERCIAL" in (bundle / "MODEL.md").read_text()
    total = sum(p.stat().st_size for p in model.folder().rglob("*") if p.is_file())
    assert total <= MAX_BYTES, f"the built-in model {model.name} takes {total / 2**20:.1f} MB"


@MODELS
def test_its_files_for_tensorrt_pass_the_parser_rules_and_it_carries_32_gate_samples(model: builtin.BuiltinModel) -> None:
    from memgaze.export.trt_compat import check_file

    manifest = read_manifest(model.bundle_path())
    assert set(manifest.tensorrt_check) == {"model.onnx", "model.int8.onnx"}
    for name, recorded in manifest.tensorrt_check.items():
        assert recorded["passed"] and check_file(model.bundle_path() / name) == [], name
    assert manifest.gate_samples is not None and manifest.gate_samples.frames >= 32
    assert manifest.gate_samples.source == "held-out frames"
    assert manifest.accuracy is not None and manifest.accuracy["passed"] and manifest.accuracy["images"] >= 32


def test_it_runs_without_torch_or_onnx_and_says_once_what_it_is(tmp_path: Path) -> None:
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    command = [sys.executable, "-c", TORCH_FREE, str(builtin.DEFAULT.samples_path() / "images")]
    first = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert first.returncode == 0, first.stderr
    count, *_, loaded = first.stdout.split()
    assert int(count) == len(card_scores()) and loaded == "[]"  # no torch, no onnx
    notice = [line for line in first.stderr.splitlines() if "built-in model" in line]
    assert len(notice) == 1 and builtin.DEFAULT.name in notice[0] and "NON-COMMERCIAL" in notice[0]
    again = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert again.returncode == 0 and "built-in model" not in again.stderr  # said once


@MODELS
def test_its_scores_on_the_shipped_photos_match_the_model_card(model: builtin.BuiltinModel) -> None:
    card = card_scores(model)
    shipped = json.loads((model.samples_path() / "scores.json").read_text())["scores"]
    assert len(card) >= 12 and set(card) == set(shipped)
    fp32 = memgaze.load(model.name, backend="onnxruntime", precision="fp32")  # a built-in model by its name
    int8 = memgaze.load(model.name, backend="onnxruntime", precision="int8")
    side = json.loads(model.recipe_path().read_text())["train"]["image_size"]
    assert fp32.input_size == (side, side)
    images = [cv2.imread(str(model.samples_path() / "images" / name)) for name in sorted(card)]
    assert all(image.shape == (side, side, 3) for image in images)  # at the model's size: no resize in between
    got32 = np.array([p.score for p in fp32.predict(images)])
    got8 = np.array([p.score for p in int8.predict(images)])
    want = np.array([card[name] for name in sorted(card)])
    np.testing.assert_allclose(got32, want[:, 0], atol=1e-3)  # float kernels differ a little between CPUs
    np.testing.assert_allclose(got8, want[:, 1], atol=1e-2)  # so do the INT8 ones (VNNI or not)
    assert np.ptp(want[:, 0]) > 0.05  # the photos are told apart


def test_no_model_means_the_built_in_one_for_every_command(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from memgaze.runtime.cli import app as run_app

    out = tmp_path / "scores.jsonl"
    result = CliRunner().invoke(run_app, ["--source", str(builtin.DEFAULT.samples_path() / "images"), "--headless", "--jsonl", str(out)])
    assert result.exit_code == 0, result.output
    assert len(out.read_text().splitlines()) == len(card_scores())
    engine = subprocess.run([str(Path(sys.executable).with_name("memgaze-engine")), "--print-trtexec", "--trt-version", "10.3"],
                            capture_output=True, text=True, timeout=120)
    assert engine.returncode == 0 and "--onnx=model.int8.onnx" in engine.stdout and str(BUNDLE) in engine.stderr


def test_the_checkpoint_is_the_one_the_bundle_was_exported_from() -> None:
    """The student checkpoint shipped for personalization computes what the FP32 ONNX file computes."""
    import torch

    from memgaze.train.checkpoint import load_checkpoint

    model, config = load_checkpoint(builtin.DEFAULT.checkpoint_path(), expect_kind="student")
    assert config["users"] == ["generic"] and config["architecture"]["backbone"] == "efficientnet_lite0"
    names = sorted(card_scores())[:4]
    images = np.stack([cv2.imread(str(builtin.DEFAULT.samples_path() / "images" / n)) for n in names])
    rgb = torch.from_numpy(images[..., ::-1].copy()).permute(0, 3, 1, 2).float() / 255
    mean, std = (torch.tensor(config["normalization"][k]).view(1, 3, 1, 1) for k in ("mean", "std"))
    with torch.no_grad():
        score, _ = model.eval()((rgb - mean) / std)
    np.testing.assert_allclose(score.numpy(), [card_scores()[n][0] for n in names], atol=1e-3)


def test_a_built_in_model_is_named_in_place_of_a_bundle_and_a_folder_of_that_name_wins(tmp_path: Path, monkeypatch) -> None:
    from typer.testing import CliRunner

    from memgaze.runtime.cli import app as run_app

    assert builtin.resolve(builtin.LITE2.name) == builtin.LITE2.bundle_path()
    assert builtin.resolve(None) == BUNDLE
    out = tmp_path / "scores.jsonl"
    images = builtin.LITE2.samples_path() / "images"
    result = CliRunner().invoke(run_app, ["--source", str(images), "--model", builtin.LITE2.name, "--headless",
                                          "--jsonl", str(out)])
    assert result.exit_code == 0, result.output
    assert len(out.read_text().splitlines()) == len(card_scores(builtin.LITE2))
    monkeypatch.chdir(tmp_path)
    (tmp_path / builtin.LITE2.name).mkdir()
    assert builtin.resolve(builtin.LITE2.name) == Path(builtin.LITE2.name)  # a user's folder is never shadowed
    assert builtin.resolve("memgaze-lite9-resmem") == Path("memgaze-lite9-resmem")  # not built in: a path like any


def test_every_built_in_file_is_package_data() -> None:
    """setup.cfg's package_data patterns take every recipe and every file of every built-in model into the wheel."""
    import configparser
    from fnmatch import fnmatch

    config = configparser.ConfigParser()
    config.read(Path(__file__).resolve().parent.parent / "setup.cfg")
    patterns = [p.strip() for p in config["options.package_data"]["memgaze.builtin"].split(",")]
    root = BUNDLE.parent.parent
    wanted = [m.recipe_path() for m in builtin.MODELS.values()]
    wanted += [p for m in builtin.MODELS.values() for p in m.folder().rglob("*") if p.is_file()]
    # fnmatch's * crosses "/", so a pattern matches a file only where their depths agree (as setuptools' glob does)
    missed = [p for p in wanted if not any(fnmatch(p.relative_to(root).as_posix(), pattern)
                                           and p.relative_to(root).as_posix().count("/") == pattern.count("/")
                                           for pattern in patterns)]
    assert not missed, missed
