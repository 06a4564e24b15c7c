"""Model checkpoints (``X.safetensors`` + ``X.json``) and resumable training state (``torch.save``).

Both are written atomically (temporary file + rename, :mod:`memgaze.atomic`); the JSON config is
written after the weights, so a config on disk always has its weights. Training state is read
with ``torch.load(weights_only=True)`` only; RNG states are stored as tensors and plain lists.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from memgaze.atomic import atomic_path, write_json
from memgaze.errors import fail
from memgaze.train.models import CHECKPOINT_VERSION, KINDS, build_model

REQUIRED_KEYS = ("memgaze_checkpoint", "kind", "architecture", "input_size", "map_size", "normalization", "users")


def run_checkpoint(out: Path, kind: str) -> Path:
    """Where ``memgaze-train --out OUT`` writes the ``kind`` ("teacher" or "student") checkpoint: ``OUT/<kind>.safetensors``."""
    return out / f"{kind}.safetensors"


def checkpoint_paths(path: str | Path) -> tuple[Path, Path]:
    """``(X.safetensors, X.json)`` for ``X``, ``X.safetensors`` or ``X.json``."""
    p = Path(path)
    stem = p.with_suffix("") if p.suffix in (".safetensors", ".json") else p
    return Path(f"{stem}.safetensors"), Path(f"{stem}.json")


def save_checkpoint(path: str | Path, model: nn.Module, config: dict[str, Any]) -> Path:
    """Write ``model``'s weights and ``config`` as ``X.safetensors`` + ``X.json``; return the weights path."""
    weights, meta = checkpoint_paths(path)
    if config.get("kind") not in KINDS or "memgaze_checkpoint" not in config:
        fail("save_checkpoint: config is not a memgaze checkpoint config (make it with default_config)")
    if config["kind"] == "student" and len(config.get("users", [])) != getattr(model, "num_users", -1):
        fail(f"save_checkpoint: config lists {len(config.get('users', []))} users, the model has {getattr(model, 'num_users', '?')}")
    # Clones break storage sharing (safetensors refuses shared tensors) and make every tensor contiguous.
    tensors = {name: value.detach().to("cpu").clone().contiguous() for name, value in model.state_dict().items()}
    with atomic_path(weights) as tmp:
        save_file(tensors, str(tmp), metadata={"format": "pt", "memgaze_kind": str(config["kind"])})
    write_json(meta, config)
    return weights


def read_checkpoint_config(path: str | Path) -> dict[str, Any]:
    """The JSON config of checkpoint ``path`` (.safetensors or .json), checked; one-line errors."""
    weights, meta = checkpoint_paths(path)
    given = Path(path)
    if not given.exists() and not (weights.exists() or meta.exists()):
        fail(f"checkpoint {given} does not exist")
    if not meta.is_file():
        fail(f"{given} is not a memgaze checkpoint: no {meta.name} beside it")
    try:
        config = json.loads(meta.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        fail(f"{meta} is not a memgaze checkpoint config: {exc}")
    if not isinstance(config, dict) or any(key not in config for key in REQUIRED_KEYS):
        missing = [k for k in REQUIRED_KEYS if not isinstance(config, dict) or k not in config]
        fail(f"{meta} is not a memgaze checkpoint config (missing {', '.join(missing)})")
    if not isinstance(config["memgaze_checkpoint"], int) or config["memgaze_checkpoint"] > CHECKPOINT_VERSION:
        fail(f"{meta} has checkpoint version {config['memgaze_checkpoint']!r}, newer than this memgaze reads; upgrade memgaze")
    if config["kind"] not in KINDS:
        fail(f"{meta} has unknown model kind {config['kind']!r}")
    return config


def load_checkpoint(path: str | Path, expect_kind: str | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """``(model in eval mode, config)`` from ``X.safetensors`` or ``X.json``.

    One-line error for a missing file, a file that is not a memgaze checkpoint, weights that
    do not match the config, or a kind other than ``expect_kind``.
    """
    config = read_checkpoint_config(path)
    weights, _ = checkpoint_paths(path)
    if expect_kind is not None and config["kind"] != expect_kind:
        fail(f"{Path(path)} is a {config['kind']} checkpoint; expected a {expect_kind}")
    if not weights.is_file():
        fail(f"checkpoint {Path(path)} has no weights file {weights.name} beside its config")
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as exc:
        fail(f"{weights} is not a readable safetensors file ({str(exc).splitlines()[0][:160]})")
    model = build_model(config, pretrained=False)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        fail(f"weights in {weights} do not match its config ({str(exc).splitlines()[0][:200]})")
    return model.eval(), config


# -- resumable training state -----------------------------------------------------------------


def rng_state() -> dict[str, Any]:
    """Python, numpy, torch (and CUDA) RNG states in types ``torch.load(weights_only=True)`` accepts."""
    name, keys, pos, has_gauss, cached = cast(tuple, np.random.get_state())
    version, internal, gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": [name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
        "python": [version, list(internal), gauss],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()  # this process's GPU: it may be the only one visible on resuming
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured."""
    torch.set_rng_state(state["torch"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    cuda = state.get("cuda")
    if cuda is not None and torch.cuda.is_available():
        if isinstance(cuda, list):  # an older state: every GPU visible then; this process's GPU is at its index, if saved
            index = torch.cuda.current_device()
            cuda = cuda[index] if index < len(cuda) else None
        if cuda is not None:
            torch.cuda.set_rng_state(cuda)


def save_training_state(
    path: str | Path,
    *,
    optimizer: torch.optim.Optimizer,
    epoch: int,
    scheduler: Any = None,
    model: nn.Module | None = None,
    best: float | None = None,
    extra: dict[str, Any] | None = None,
) -> None:
    """Atomically ``torch.save`` what resuming needs: optimizer/scheduler (and model) state,
    the finished ``epoch``, the ``best`` monitored metric, ``extra`` plain values and RNG states."""
    state = {
        "epoch": int(epoch),
        "best": best,
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "model": model.state_dict() if model is not None else None,
        "rng": rng_state(),
        "extra": extra or {},
    }
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_training_state(
    path: str | Path,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    model: nn.Module | None = None,
    restore_rng: bool = True,
) -> dict[str, Any]:
    """Restore a :func:`save_training_state` file into the given objects; return
    ``{"epoch", "best", "extra"}``. One-line error for a missing, unreadable or mismatched file."""
    file = Path(path)
    if not file.is_file():
        fail(f"training state {file} does not exist")
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same user problem
        fail(f"cannot resume from {file}: {type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}")
    if not isinstance(state, dict) or not {"epoch", "optimizer", "rng"} <= state.keys():
        fail(f"{file} is not a memgaze training state")
    try:
        if model is not None and state["model"] is not None:
            model.load_state_dict(state["model"])
        if optimizer is not None:
            optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None and state["scheduler"] is not None:
            scheduler.load_state_dict(state["scheduler"])
    except (RuntimeError, ValueError, KeyError) as exc:
        fail(f"cannot resume from {file}: it does not match this run ({str(exc).splitlines()[0][:200]})")
    if restore_rng:
        set_rng_state(state["rng"])
    return {"epoch": state["epoch"], "best": state["best"], "extra": state["extra"]}
