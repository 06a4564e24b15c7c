"""Helpers shared by the memgaze-train tests: tiny demo data and running the console script."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from memgaze.train.data.demo import make_demo_dataset

SCRIPT = str(Path(sys.executable).with_name("memgaze-train"))
TINY = ["--image-size", "32", "--batch-size", "8", "--device", "cpu", "--workers", "0", "--no-cache"]


def tiny_data(root: Path, count: int = 36, users: int = 2) -> Path:
    """A small synthetic dataset (48 px images) in the LaMem layout."""
    make_demo_dataset(root, count, 48, users, 0)
    return root


def train(*args: str, timeout: float = 600, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``memgaze-train ARGS`` in a subprocess; returns the completed process (text output)."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([SCRIPT, *args], capture_output=True, text=True, timeout=timeout, env=full_env)


def train_in_process(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> subprocess.CompletedProcess[str]:
    """``memgaze-train ARGS`` through its console entry point in this process (no second torch import): exit code
    and output as :func:`train` gives them. Torch's process-wide deterministic-algorithms switch, which a run
    sets, is put back."""
    import torch

    from memgaze.train.cli import main

    deterministic, warn_only = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    capsys.readouterr()
    monkeypatch.setattr(sys, "argv", ["memgaze-train", *args])
    try:
        main()
        code = 0
    except SystemExit as exit_info:
        code = int(exit_info.code or 0)
    finally:
        torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(["memgaze-train", *args], code, out, err)


def assert_one_line_error(proc: subprocess.CompletedProcess[str], needle: str) -> None:
    """Exit 2, no traceback, and one ``error:`` line mentioning ``needle``."""
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and needle in errors[0], proc.stderr
