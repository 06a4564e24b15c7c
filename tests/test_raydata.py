"""Ray Data scale-out on a real local Ray instance of 2 CPUs: the same scores as memgaze-run, Parquet out."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'memgaze[ray]')")
pq = pytest.importorskip("pyarrow.parquet")

from memgaze.runtime.raydata import prune_partial_files, relative_name, score_to_parquet  # noqa: E402
from runtime_fixtures import make_bundle, make_folder  # noqa: E402


@pytest.fixture(scope="module")
def local_ray():
    """One local instance for the module: 2 CPUs, no dashboard (its workers import memgaze from the editable install)."""
    ray.init(num_cpus=2, include_dashboard=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("ray")
    bundle = make_bundle(root / "bundle", size=64, personalized=False)
    library = root / "library"
    make_folder(library / "2024" / "06", frames=5, size=150, corrupt=(3,))
    make_folder(library / "2024" / "07", frames=4, size=90)
    return bundle, library


def test_ray_rows_match_memgaze_run(local_ray: None, photos: tuple[Path, Path], tmp_path: Path) -> None:
    bundle, library = photos
    out = tmp_path / "scores"
    summary = score_to_parquet([str(library)], str(out), bundle, workers=2, batch=3, heatmaps=True)
    assert (summary.rows, summary.errors, summary.named) == (9, 1, ["2024/06/img_003.jpg"])
    table = pq.read_table(out).to_pylist()
    rows = {row["file"]: row for row in table}
    run = subprocess.run([str(Path(sys.executable).with_name("memgaze-run")), "--source", str(library), "--model", str(bundle),
                          "--headless", "--jsonl", "-"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    expected = {r["file"]: r for r in map(json.loads, run.stdout.splitlines()) if r["score"] is not None}
    assert sorted(expected) == sorted(name for name, row in rows.items() if row["error"] is None)
    for name, record in expected.items():
        row = rows[name]
        assert row["score"] == pytest.approx(record["score"], abs=1e-5)  # float32 in Parquet
        assert [row["peak_x"], row["peak_y"]] == record["peak"]
        assert np.asarray(row["heatmap"]).shape == (8, 8)
        assert Path(row["path"]).is_absolute() and row["path"].endswith(name)
    bad = rows["2024/06/img_003.jpg"]
    assert bad["score"] is None and "cannot decode" in bad["error"]
    assert (rows["2024/06/img_000.jpg"]["width"], rows["2024/06/img_000.jpg"]["height"]) == (150, 150)


def test_existing_output_is_refused_and_partial_files_are_pruned(photos: tuple[Path, Path], tmp_path: Path) -> None:
    import pyarrow as pa

    bundle, library = photos
    out = tmp_path / "scores"
    out.mkdir()
    pq.write_table(pa.table({"file": ["a.jpg"], "score": [0.5]}), out / "done.parquet")
    cli = subprocess.run([str(Path(sys.executable).with_name("memgaze-ray")), str(library), "--out", str(out), "--model", str(bundle)],
                         capture_output=True, text=True, timeout=120)
    lines = cli.stderr.strip().splitlines()
    assert cli.returncode == 2 and len(lines) == 1 and "--overwrite" in lines[0], cli.stderr
    whole = (out / "done.parquet").read_bytes()
    (out / "cut.parquet").write_bytes(whole[: len(whole) // 2])  # a file an interrupted write left unfinished
    assert prune_partial_files(out) == 1
    assert sorted(p.name for p in out.iterdir()) == ["done.parquet"] and pq.read_table(out).num_rows == 1


def test_names_are_relative_to_their_root() -> None:
    assert relative_name("/data/photos/2024/a.jpg", ["/other", "/data/photos"]) == "2024/a.jpg"
    assert relative_name("bucket/photos/a.jpg", ["bucket/photos/"]) == "a.jpg"  # an s3:// prefix, as Ray gives its paths
    assert relative_name("/elsewhere/b.jpg", ["/data/photos"]) == "/elsewhere/b.jpg"


def _parent_if_running(pid: int) -> int | None:
    """A process's parent from /proc; None once it is gone or a zombie."""
    try:
        state, parent = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[:2]
    except OSError:
        return None
    return None if state == "Z" else int(parent)


def _running(pid: int) -> bool:
    return _parent_if_running(pid) is not None


def _children_by_parent() -> dict[int, list[int]]:
    """Every running process's children, from /proc (empty where there is none)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        parent = _parent_if_running(int(entry.name))
        if parent is not None:
            children.setdefault(parent, []).append(int(entry.name))
    return children


def _tree(root: int) -> set[int]:
    children, tree, todo = _children_by_parent(), {root}, [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in tree:
                tree.add(child)
                todo.append(child)
    return tree


def _signal(pids: set[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def kill_process_tree(root: int) -> None:
    """Stop ``root``'s process group and every descendant (Ray's raylet and workers may leave the group), so that
    nothing forks or writes any more, then kill them all and wait until they are gone."""
    os.killpg(root, signal.SIGSTOP)
    stopped: set[int] = set()
    while fresh := _tree(root) - stopped:
        _signal(fresh, signal.SIGSTOP)
        stopped |= fresh
    os.killpg(root, signal.SIGKILL)
    _signal(stopped, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(map(_running, stopped - {root})):
        time.sleep(0.05)


def test_a_job_over_damaged_photos_killed_then_resumed_holds_every_photo_once(tmp_path: Path) -> None:
    """A real interruption: the memgaze-ray process tree killed (kill -9) once Parquet files appear, then --resume."""

    from runtime_fixtures import make_damaged

    bundle = make_bundle(tmp_path / "bundle", size=64, personalized=False)
    library = make_folder(tmp_path / "library", frames=160, size=96)
    errors = make_damaged(library / "damaged")
    out = tmp_path / "scores"
    command = [str(Path(sys.executable).with_name("memgaze-ray")), str(library), "--out", str(out), "--model", str(bundle),
               "--batch", "2", "--quiet"]
    job = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and job.poll() is None and len(list(out.glob("*.parquet"))) < 3:
        time.sleep(0.05)
    assert job.poll() is None, "the job ended before it could be killed"
    kill_process_tree(job.pid)  # the driver and the Ray it started, all at once, as a crash or a reboot would
    job.wait(timeout=30)
    prune_partial_files(out)
    before = pq.read_table(out).num_rows
    assert 0 < before < 164

    resumed = subprocess.run(command + ["--resume"], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"{before} photo(s) already scored" in resumed.stderr
    rows = pq.read_table(out).to_pylist()
    assert sorted(row["file"] for row in rows) == sorted([f"img_{i:03d}.jpg" for i in range(160)] + [f"damaged/{n}" for n in errors])
    for name, reason in errors.items():  # the damaged photos are rows with their errors, and the job finished
        row = next(row for row in rows if row["file"] == f"damaged/{name}")
        assert row["score"] is None and reason in row["error"]
    assert all(row["bytes"] == Path(row["path"]).stat().st_size for row in rows)
