"""``memgaze-bench photos``: photos per second on a collection of real photos, side by side in one run.

* **Decode alone** (the limit on a CPU): every photo decoded as the runtime decodes it (a JPEG at the 1/2–1/8
  scale the model allows, :func:`memgaze.media.read_image_for`) on a pool of threads, one per usable core;
  nothing else.
* **memgaze end to end**: ``memgaze-run --source FOLDER --headless --jsonl`` as a function call (``Model.stream`` +
  the JSON-lines sink through ``Pipeline``): listing, decoding on the pool, resize, batched engine calls, rows
  written. Decode included.
* **ResMem** (Needell & Bainbridge, ``pip install resmem``), as its package is used: PIL opens each photo, its own
  ``transformer`` (resize to 256², centre crop 227, tensor), the model in PyTorch, in batches of 8.
* **Ray Data** with 1 and 2 workers (``memgaze.runtime.raydata.score_to_parquet``, the code behind ``memgaze-ray``) on
  a local Ray instance of all usable CPUs: whole jobs from listing to the Parquet files written, actor start-up
  (each worker loads the model) included, Ray's own start-up not, over ``ray_passes`` passes (its fixed costs are
  seconds, so its jobs are longer).

* **CPU floor**: the CPU time one photo costs in each stage (decode, resize, engine at the run's batch), measured
  alone as process CPU time; free cores cannot score faster than ``cores ÷ (their sum)``. Decoding alone costs the
  decode share only, so ``decode ÷ (decode + resize + engine)`` is the highest ratio to decode alone that these
  stage costs allow, on any number of cores and under any load that slows both alike (``floor_vs_decode``);
  ``memgaze_vs_floor`` is the measured ratio over it: what the pipeline loses to scheduling.

Decode, memgaze and ResMem are measured in ``rounds`` interleaved rounds (the median round is reported, with the
range); each pass over the collection is ``passes`` times its photos, so that the fixed costs of a run (thread
start, first engine calls) are spread as over a real library. ResMem runs one pass a round (it is ~30× slower).
"""

from __future__ import annotations

import logging
import os
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np

from memgaze.runtime.api import Model, load
from memgaze.bench.machine import describe_machine
from memgaze.bench.report import Block, Heading, Para, Table
from memgaze.errors import fail
from memgaze.media import UnreadableImage, jpeg_wh, read_image_for, resize_frame
from memgaze.runtime.collection import MediaItem
from memgaze.runtime.pipeline import Pipeline
from memgaze.runtime.sinks import JsonlSink
from memgaze.runtime.sources import collection_items, source_spec
from memgaze.system import usable_cores

RESMEM_BATCH = 8


def photo_items(sources: list[str]) -> list[MediaItem]:
    """The photos (not videos) of the collections, as memgaze-run lists them."""
    items = [item for source in sources for item in collection_items(source_spec(source)) if not item.video]
    if not items:
        fail(f"no photo in {', '.join(sources)}")
    return items


def photo_size(item: MediaItem) -> tuple[int, int] | None:
    """A photo's (width, height): a JPEG's from its header, another's decoded."""
    if (dims := jpeg_wh(item.path)) is not None:
        return dims
    image = cv2.imread(str(item.path))
    return None if image is None else (image.shape[1], image.shape[0])


def decode_alone(items: list[MediaItem], size: tuple[int, int], threads: int) -> int:
    """Decode every photo as the runtime does, on ``threads`` threads; returns how many decoded."""
    with ThreadPoolExecutor(threads) as pool:
        return sum(pool.map(lambda item: decodes(item, size), items))


def decodes(item: MediaItem, size: tuple[int, int]) -> bool:
    """Whether a photo decodes as the runtime decodes it."""
    try:
        read_image_for(item.path, size)
    except UnreadableImage:
        return False
    return True


def resmem_scorer() -> Callable[[list[MediaItem]], int]:
    """ResMem as its package is used: PIL, its transformer, the model (batches of RESMEM_BATCH); returns photos scored."""
    import resmem
    import torch
    from PIL import Image

    from memgaze.train.label_free.resmem import load_resmem

    model = load_resmem()

    def score(items: list[MediaItem]) -> int:
        with torch.inference_mode():
            for start in range(0, len(items), RESMEM_BATCH):
                batch = [resmem.transformer(Image.open(item.path).convert("RGB")) for item in items[start:start + RESMEM_BATCH]]
                model(torch.stack(batch))
        return len(items)

    return score


def cpu_ms(run: Callable[[], object], photos: int) -> float:
    """Process CPU milliseconds per photo of ``run()`` (every thread's)."""
    start = time.process_time()
    run()
    return (time.process_time() - start) * 1000.0 / photos


def stage_cpu(model: Model, items: list[MediaItem], batch: int) -> dict[str, float]:
    """CPU ms per photo of each stage alone: decode (as the runtime does), resize, engine (``batch`` per call)."""
    size = model.input_size
    images = [read_image_for(item.path, size)[0] for item in items if decodes(item, size)]
    inputs = [resize_frame(image, size) for image in images]
    batches = [np.stack(inputs[start:start + batch]) for start in range(0, len(inputs), batch)]
    model.backend.infer(batches[0], None)  # warm
    costs = {
        "decode": cpu_ms(lambda: [read_image_for(item.path, size) for item in items], len(items)),
        "resize": cpu_ms(lambda: [resize_frame(image, size) for image in images], len(images)),
        "engine": cpu_ms(lambda: [model.backend.infer(chunk, None) for chunk in batches], len(inputs)),
    }
    return {**costs, "floor_photos_per_s": usable_cores() * 1000.0 / sum(costs.values())}


def stage_ratios(memgaze_vs_decode: float, cpu: dict[str, float]) -> dict[str, float]:
    """The measured ratio to decode alone, the highest these stage costs allow, and the first over the second."""
    best = cpu["decode"] / (cpu["decode"] + cpu["resize"] + cpu["engine"])
    return {"memgaze_vs_decode": memgaze_vs_decode, "floor_vs_decode": best, "memgaze_vs_floor": memgaze_vs_decode / best}


def timed(run: Callable[[], int]) -> dict[str, float]:
    """Wall seconds of ``run()`` and the photos per second it scored."""
    start = time.perf_counter()
    photos = run()
    seconds = time.perf_counter() - start
    return {"photos": photos, "seconds": seconds, "photos_per_s": photos / seconds}


def median_round(samples: list[dict[str, float]]) -> dict[str, Any]:
    """The median round by rate, with the range of all rounds."""
    rates = [s["photos_per_s"] for s in samples]
    return {**samples[rates.index(statistics.median_low(rates))], "range": [min(rates), max(rates)], "rounds": len(samples)}


def ray_runs(sources: list[str], bundle: Path, workers: list[int], batch: int, precision: str | None) -> list[dict[str, Any]]:
    """Whole Ray Data jobs (listing to Parquet) with each number of workers, on a local instance of all usable CPUs."""
    from memgaze.runtime.raydata import require_ray, score_to_parquet

    ray = require_ray()
    cores = usable_cores()
    rows = []
    ray.init(num_cpus=cores, include_dashboard=False, logging_level=logging.WARNING)
    try:
        for count in workers:
            with tempfile.TemporaryDirectory(prefix="memgaze-bench-ray-") as folder:
                start = time.perf_counter()
                summary = score_to_parquet(sources, str(Path(folder) / "scores"), bundle, workers=count, batch=batch,
                                           threads=max(1, cores // count), precision=precision)
                seconds = time.perf_counter() - start
            rows.append({"workers": count, "threads_per_worker": max(1, cores // count), "photos": summary.rows,
                         "errors": summary.errors, "seconds": seconds, "photos_per_s": summary.rows / seconds})
    finally:
        ray.shutdown()
    return rows


def run_photos_bench(model: Path, sources: list[str], *, batch: int = 8, passes: int = 4, rounds: int = 3,
                     backend: str = "onnxruntime", precision: str | None = "int8", resmem: bool = True,
                     ray_workers: list[int] | None = None, ray_passes: int = 16) -> dict[str, Any]:
    """Every measurement of this module; returns the ``photos.json`` document."""
    items = photo_items(sources)
    cores = usable_cores()
    repeated = [source for _ in range(passes) for source in sources]
    samples: dict[str, list[dict[str, float]]] = {"decode": [], "memgaze": [], "resmem": []}
    score_resmem = resmem_scorer() if resmem else None
    with load(model, backend, precision) as opened:
        manifest = opened.bundle.manifest
        size = opened.input_size
        described = opened.describe()

        def memgaze_run() -> int:
            stream = opened.stream(repeated, batch=batch)
            return Pipeline(stream, [JsonlSink(os.devnull)], stages=False).run().frames

        memgaze_run()  # warm: first engine calls, page cache
        floors = []
        for _ in range(rounds):
            samples["decode"].append(timed(lambda: decode_alone(items * passes, size, cores)))
            samples["memgaze"].append(timed(memgaze_run))
            floors.append(stage_cpu(opened, items, batch))
            if score_resmem is not None:
                samples["resmem"].append(timed(lambda: score_resmem(items)))
    result: dict[str, Any] = {name: median_round(rows) for name, rows in samples.items() if rows}
    decode, memgaze = result["decode"], result["memgaze"]
    floor = {key: statistics.median(f[key] for f in floors) for key in floors[0]}
    ratios = stage_ratios(memgaze["photos_per_s"] / decode["photos_per_s"], floor)
    if "resmem" in result:
        ratios["memgaze_vs_resmem"] = memgaze["photos_per_s"] / result["resmem"]["photos_per_s"]
    ray = ray_runs([source for _ in range(ray_passes) for source in sources], model, ray_workers, batch, precision) if ray_workers else []
    for row in ray:
        row["vs_memgaze"] = row["photos_per_s"] / memgaze["photos_per_s"]
    megapixels = [width * height / 1e6 for width, height in filter(None, map(photo_size, items))]
    return {
        "machine": describe_machine(),
        "settings": {"model": str(model), "model_name": manifest.model_name or model.resolve().name,
                     "backend": described, "input_size": list(size), "sources": sources, "photos": len(items),
                     "megapixels": [min(megapixels), max(megapixels)] if megapixels else None, "passes": passes,
                     "rounds": rounds, "batch": batch, "decode_threads": cores, "resmem_batch": RESMEM_BATCH,
                     "ray_passes": ray_passes},
        **result, "cpu_ms_per_photo": floor, "ratios": ratios, "ray": ray,
    }


def summary_line(result: dict[str, Any]) -> str:
    line = (f"decode alone {result['decode']['photos_per_s']:.1f} photos/s, memgaze {result['memgaze']['photos_per_s']:.1f} "
            f"(×{result['ratios']['memgaze_vs_decode']:.2f} of decode; its stages' CPU costs allow ×{result['ratios']['floor_vs_decode']:.2f})")
    if "resmem" in result:
        line += f", ResMem {result['resmem']['photos_per_s']:.2f} (memgaze ×{result['ratios']['memgaze_vs_resmem']:.1f})"
    for row in result["ray"]:
        line += f"; Ray {row['workers']} worker(s) {row['photos_per_s']:.1f}"
    return line


def section(result: dict[str, Any], folder: Path) -> list[Block]:
    """Report blocks for a photos result."""
    s = result["settings"]
    low, high = s["megapixels"] or (0.0, 0.0)
    rows: list[list[Any]] = [
        ["decode alone (the limit)", result["decode"]["photos_per_s"], "–", f"{s['decode_threads']} threads, reduced JPEG decode"],
        ["memgaze end to end", result["memgaze"]["photos_per_s"], result["ratios"]["memgaze_vs_decode"],
         f"batch {s['batch']}, {s['backend']}"],
    ]
    if "resmem" in result:
        rows.append(["ResMem (PIL + PyTorch)", result["resmem"]["photos_per_s"], result["resmem"]["photos_per_s"] / result["decode"]["photos_per_s"],
                     f"batch {s['resmem_batch']}; memgaze ×{result['ratios']['memgaze_vs_resmem']:.1f}"])
    for row in result["ray"]:
        rows.append([f"Ray Data, {row['workers']} worker(s)", row["photos_per_s"], row["photos_per_s"] / result["decode"]["photos_per_s"],
                     f"{row['threads_per_worker']} CPU each, {row['seconds']:.1f} s for {row['photos']} photos, actor start-up included"])
    cpu = result["cpu_ms_per_photo"]
    rows.insert(1, ["CPU floor (these stages on free cores)", cpu["floor_photos_per_s"], result["ratios"]["floor_vs_decode"],
                    f"CPU ms per photo: decode {cpu['decode']:.2f} + resize {cpu['resize']:.2f} + engine {cpu['engine']:.2f}; "
                    f"÷ decode alone = decode ÷ the sum; memgaze reaches ×{result['ratios']['memgaze_vs_floor']:.2f} of that ratio"])
    ranges = ", ".join(f"{name} {result[name]['range'][0]:.1f}–{result[name]['range'][1]:.1f}" for name in ("decode", "memgaze", "resmem")
                       if name in result)
    return [
        Heading("Photo collections: photos per second"),
        Para(f"{s['photos']} photos of {low:.1f}–{high:.1f} megapixels ({', '.join(s['sources'])}), {s['passes']} passes over them a "
             f"round (ResMem: one), {s['rounds']} interleaved rounds, median shown (ranges: {ranges}); model "
             f"{s['model_name']} at {s['input_size'][0]}×{s['input_size'][1]} ({s['model']})."),
        Table(["run", "photos/s", "÷ decode alone", "how"], rows),
        Para("Decode alone is the limit on a CPU: every photo decoded as the runtime does (JPEG at 1/2–1/8 scale) on one "
             "thread per core, nothing else. memgaze end to end is memgaze-run on the folder (listing, decode, resize, "
             "batched engine calls, JSON lines). The CPU floor is what these cores allow for the CPU time each stage costs "
             "alone: decoding alone is the limit only where the model costs nothing. ResMem runs as its package is used "
             "(PIL, its transformer, PyTorch). Ray Data jobs include starting their workers (each loads the model)."),
    ]
