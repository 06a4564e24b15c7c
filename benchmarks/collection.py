"""``memgaze-bench collection``: peak memory and photos per second against the size of a collection.

For each number of photos (1k, 10k, 50k by default), a folder of small generated JPEGs (a few hundred distinct
pictures, each hard-linked under many names: every name is a file to read, decode and score) is scored three ways,
each in a process of its own so that its peak resident memory (``ru_maxrss`` from ``wait4``) is its own:

* ``predict(list)``: ``memgaze.load(model).predict(paths)`` on the list of every path;
* ``stream()``: ``for p in model.stream(folder)`` (decoded on every core, 8 per engine call);
* ``memgaze-run``: the command line, ``--headless --jsonl FILE`` (rows written to a file).

Memory independent of the collection means the peak stays flat, within a small factor, from the smallest count to
the largest. The cost of the damaged-file check (:mod:`memgaze.damage`: the file's bytes read once, its end
searched, then decoded from memory) is measured in the same run: ``stream()`` over the middle count with the check
and without it (OpenCV reading the file itself, as before the check), in interleaved rounds; the ratio of their
photos/s is reported.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from memgaze.bench.machine import describe_machine
from memgaze.bench.report import Block, Heading, Para, Table
from memgaze.errors import fail
from memgaze.media import read_image_for

COUNTS = (1000, 10000, 50000)
MODES = ("predict", "stream", "memgaze-run")
DISTINCT = 256  # distinct pictures; every other photo is a hard link to one of them
PHOTO_WH = (320, 240)


def make_collection(folder: Path, count: int, seed: int = 0) -> Path:
    """``count`` JPEGs of PHOTO_WH in ``folder`` (sub-folders of 1000): DISTINCT generated pictures, hard-linked."""
    rng = np.random.default_rng(seed)
    originals = folder / "originals"
    originals.mkdir(parents=True, exist_ok=True)
    width, height = PHOTO_WH
    for index in range(min(DISTINCT, count)):
        target = originals / f"{index:04d}.jpg"
        if not target.exists():
            small = rng.integers(0, 256, (height // 16, width // 16, 3), dtype=np.uint8)
            picture = cv2.GaussianBlur(cv2.resize(small, PHOTO_WH, interpolation=cv2.INTER_CUBIC), (5, 5), 0)
            cv2.imwrite(str(target), picture, [cv2.IMWRITE_JPEG_QUALITY, 90])
    photos = folder / f"photos-{count}"
    if not photos.exists():
        for index in range(count):
            album = photos / f"{index // 1000:03d}"
            album.mkdir(parents=True, exist_ok=True)
            os.link(originals / f"{index % DISTINCT:04d}.jpg", album / f"{index:06d}.jpg")
    return photos


PROBE = """
import json, sys, time
from pathlib import Path
import memgaze
from memgaze.runtime.pipeline import Stream
from memgaze.runtime.sources import CaptureOptions
mode, folder, model_arg, verify = sys.argv[1], Path(sys.argv[2]), sys.argv[3] or None, sys.argv[4] == "1"
model = memgaze.load(model_arg, "onnxruntime", "int8")
start = time.perf_counter()
if mode == "predict":
    scored = len(model.predict(sorted(folder.rglob("*.jpg"))))
else:  # what model.stream(folder) builds, with the damaged-file check on or off
    scored = sum(1 for _ in Stream(model.backend, model.open_sources(str(folder), CaptureOptions()), batch=8, verify=verify))
print(json.dumps({"photos": scored, "seconds": time.perf_counter() - start}))
"""


def _wait(process: subprocess.Popen[str]) -> tuple[int, float]:
    """(exit status, peak resident memory in MB) of a child, from wait4."""
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return process.returncode, usage.ru_maxrss / 1024.0


def measure(mode: str, folder: Path, model: Path | None, verify: bool = True) -> dict[str, Any]:
    """One scoring of ``folder`` by ``mode`` in a process of its own: photos, seconds, photos/s, peak RSS (MB)."""
    if mode == "memgaze-run":
        with tempfile.TemporaryDirectory(prefix="memgaze-bench-rows-") as rows:
            command = [str(Path(sys.executable).with_name("memgaze-run")), "--source", str(folder), "--headless", "--quiet",
                       "--jsonl", str(Path(rows) / "scores.jsonl"), "--backend", "onnxruntime", "--precision", "int8",
                       *(["--model", str(model)] if model else [])]
            process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            assert process.stderr is not None
            stderr = process.stderr.read()
            status, peak = _wait(process)
            photos = sum(1 for _ in open(Path(rows) / "scores.jsonl")) if status == 0 else 0
        summary = next((line for line in stderr.splitlines() if line.startswith("memgaze-run:")), "")
        seconds = float(summary.split(" frames in ")[1].split(" s")[0]) if " frames in " in summary else float("nan")
    else:
        process = subprocess.Popen([sys.executable, "-c", PROBE, mode, str(folder), str(model or ""), "1" if verify else "0"],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        stdout, stderr = process.stdout.read(), process.stderr.read()  # type: ignore[union-attr]
        status, peak = _wait(process)
        result = json.loads(stdout.strip().splitlines()[-1]) if status == 0 else {"photos": 0, "seconds": float("nan")}
        photos, seconds = int(result["photos"]), float(result["seconds"])
    if status != 0:
        fail(f"memgaze-bench collection: {mode} on {folder} failed: {stderr.strip().splitlines()[-1:]}")
    return {"mode": mode, "photos": photos, "seconds": seconds, "photos_per_s": photos / seconds, "peak_rss_mb": peak}


def decode_cpu_ms(paths: list[Path], rounds: int, model_hw: tuple[int, int] = (224, 224)) -> dict[str, float]:
    """CPU ms per photo to read and decode ``paths`` as the runtime does, with the damaged-file check and without it
    (median of ``rounds`` interleaved rounds, this process)."""
    samples: dict[str, list[float]] = {"with": [], "without": []}
    for _ in range(rounds):
        for label, verify in (("with", True), ("without", False)):
            start = time.process_time()
            for path in paths:
                read_image_for(path, model_hw, verify=verify)
            samples[label].append((time.process_time() - start) * 1000.0 / len(paths))
    return {label: statistics.median(values) for label, values in samples.items()}


def run_collection_bench(model: Path | None, counts: list[int], work: Path, rounds: int = 3) -> dict[str, Any]:
    """Every measurement of this module; returns the ``collection.json`` document."""
    rows = []
    for count in counts:
        folder = make_collection(work, count)
        for mode in MODES:
            rows.append({"count": count, **measure(mode, folder, model)})
    middle = make_collection(work, sorted(counts)[len(counts) // 2])
    checks: dict[str, list[float]] = {"with": [], "without": []}
    for _ in range(rounds):
        for label, verify in (("with", True), ("without", False)):
            checks[label].append(measure("stream", middle, model, verify)["photos_per_s"])
    check = {label: statistics.median(rates) for label, rates in checks.items()}
    decode = decode_cpu_ms(sorted(middle.rglob("*.jpg"))[:2000], rounds)
    by_mode = {mode: [row["peak_rss_mb"] for row in rows if row["mode"] == mode] for mode in MODES}
    return {
        "machine": describe_machine(),
        "settings": {"model": str(model) if model else "built-in", "counts": counts, "photo_wh": list(PHOTO_WH),
                     "distinct_pictures": DISTINCT, "precision": "int8", "backend": "onnxruntime", "check_rounds": rounds,
                     "check_count": int(middle.name.split("-")[1])},
        "rows": rows,
        "peak_growth": {mode: max(peaks) / min(peaks) for mode, peaks in by_mode.items()},
        "damage_check": {"photos_per_s_with": check["with"], "photos_per_s_without": check["without"],
                         "ratio": check["with"] / check["without"], "rounds": checks, "decode_cpu_ms": decode,
                         "decode_ratio": decode["without"] / decode["with"]},
    }


def summary_line(result: dict[str, Any]) -> str:
    growth = ", ".join(f"{mode} ×{value:.2f}" for mode, value in result["peak_growth"].items())
    return (f"peak memory from {min(result['settings']['counts'])} to {max(result['settings']['counts'])} photos: {growth}; "
            f"damaged-file check: ×{result['damage_check']['ratio']:.3f} photos/s")


def section(result: dict[str, Any], folder: Path) -> list[Block]:
    """Report blocks for a collection result."""
    s = result["settings"]
    table = [[row["mode"], row["count"], row["peak_rss_mb"], row["photos_per_s"], row["seconds"]] for row in result["rows"]]
    check = result["damage_check"]
    growth = ", ".join(f"{mode} ×{value:.2f}" for mode, value in result["peak_growth"].items())
    return [
        Heading("Photo collections: memory and speed against the number of photos"),
        Para(f"Small generated JPEGs of {s['photo_wh'][0]}×{s['photo_wh'][1]} ({s['distinct_pictures']} distinct pictures, "
             f"hard-linked under every name), model {s['model']} ({s['backend']}, {s['precision']}); each measurement in a "
             "process of its own, peak resident memory from wait4."),
        Table(["run", "photos", "peak RSS MB", "photos/s", "seconds"], table),
        Para(f"Peak memory, largest ÷ smallest count: {growth}."),
        Table(["stream() over " + str(s["check_count"]) + " photos", "photos/s (median of " + str(s["check_rounds"]) + ")"],
              [["with the damaged-file check", check["photos_per_s_with"]],
               ["without (OpenCV reads the file itself)", check["photos_per_s_without"]],
               ["ratio", check["ratio"]]]),
        Para(f"Reading and decoding alone (CPU ms per photo, this process): {check['decode_cpu_ms']['with']:.3f} with the check, "
             f"{check['decode_cpu_ms']['without']:.3f} without (without ÷ with: ×{check['decode_ratio']:.3f})."),
    ]
