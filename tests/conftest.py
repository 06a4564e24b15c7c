"""Shared fixtures: a small SYNTHETIC demo dataset written by the real generator."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Callable, Iterator

import pytest

from memgaze.train.data.demo import make_demo_dataset


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--train-seed", type=int, default=0,
        help="seed of the training runs whose trained metrics the tests assert (make seed-check runs 0, 1, 2)",
    )


@pytest.fixture(scope="session", autouse=True)
def user_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A private ``$XDG_CACHE_HOME`` for the whole run: nothing a test caches (teacher outputs, plans of
    read-only bundles, the built-in model's first-use notice) reaches the user's own cache."""
    folder = tmp_path_factory.mktemp("xdg-cache")
    previous = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(folder)
    yield folder
    if previous is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = previous


@pytest.fixture(scope="session")
def train_seed(request: pytest.FixtureRequest) -> int:
    """``--train-seed``: the seed given to the training runs of trained-metric tests."""
    return int(request.config.getoption("--train-seed"))


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Demo dataset: 48 images at 64 px, 4 users, seed 0 (read-only: copy it before breaking it)."""
    root = tmp_path_factory.mktemp("demo") / "data"
    make_demo_dataset(root, count=48, image_size=64, users=4, seed=0)
    return root


@pytest.fixture
def make_demo(tmp_path: Path) -> Callable[..., Path]:
    """Factory ``make_demo(count=48, size=64, users=4, seed=0, folds=1) -> Path`` of a fresh demo dataset."""
    made = 0

    def make(count: int = 48, size: int = 64, users: int = 4, seed: int = 0, folds: int = 1) -> Path:
        nonlocal made
        made += 1
        root = tmp_path / f"demo{made}"
        make_demo_dataset(root, count=count, image_size=size, users=users, seed=seed, folds=folds)
        return root

    return make


@pytest.fixture
def demo_copy(demo_data: Path, tmp_path: Path) -> Path:
    """A writable copy of ``demo_data`` for tests that break files."""
    target = tmp_path / "data"
    shutil.copytree(demo_data, target)
    return target
