"""Deterministic SYNTHETIC demo dataset in the LaMem layout, with simulated users' gaze.

Each image is a procedural scene: a textured background (gradient, stripes or blotchy noise,
plus fine pixel noise whose strength is the scene's ``busy`` level), grey geometric shapes
(distractors), text-like cards (rows of dark glyph rectangles on a light card), bright
saturated objects, and face-like elements (skin ellipse, eyes, mouth), drawn in that order.
Everything is placed in unit coordinates, so a seed gives the same scene at any size.

The memorability score is a known function of the content (see :func:`demo_score`):

    score = clip(0.35 + 0.30·faces/3 + 0.25·bright/4 + 0.05·text/2 − 0.30·busy + N(0, 0.04²), 0, 1)

with faces ∈ {0..3}, bright ∈ {0..4}, text ∈ {0..2} drawn uniformly and busy ~ U(0, 1) — large,
coarse terms that a small CNN learns in a few epochs; scores span about 0.05–0.95.

Simulated users (:data:`USER_PROFILES`) look at one element kind each (weight 1 per element vs
0.08 for other kinds, times a per-user random factor in [0.7, 1.3]) on top of a centre bias;
``user_center`` mostly looks at the centre. A user's maps depend only on the seed, the image and
that user, never on how many users were requested. ``gaze/<user>/<stem>.png`` holds the map at
image size (max = 255); ``gaze/fixations.csv`` holds 10–17 fixations per user and image sampled
from it (pixel coordinates of the image, durations 120–599 ms).
"""

from __future__ import annotations

import dataclasses
import io
import math
import os
import time
from pathlib import Path

import cv2
import numpy as np

from memgaze.atomic import atomic_dir
from memgaze.console import console
from memgaze.errors import fail
from memgaze.layout import FIXATIONS_NAME, split_text

USER_PROFILES: tuple[tuple[str, str], ...] = (
    ("user_faces", "face"),
    ("user_text", "text"),
    ("user_bright", "bright"),
    ("user_shapes", "shape"),
    ("user_center", "center"),
)
KINDS = ("shape", "text", "bright", "face")  # drawing order
SCORE_NOISE_SD = 0.04
JPEG_QUALITY = 92
README_MARK = "SYNTHETIC memgaze demo dataset"
SKIN_BGR = ((180, 200, 235), (140, 170, 215), (100, 135, 190), (70, 100, 150), (160, 185, 225))


def demo_score(faces: int, bright: int, text: int, busy: float) -> float:
    """The noise-free score of a scene (the demo's ground truth before N(0, 0.04²) is added)."""
    return 0.35 + 0.30 * faces / 3 + 0.25 * bright / 4 + 0.05 * text / 2 - 0.30 * busy


@dataclasses.dataclass(frozen=True)
class Element:
    """One drawn element, in unit coordinates: centre, half-extent, colour and a style seed."""

    kind: str
    cx: float
    cy: float
    rx: float
    ry: float
    color: tuple[int, int, int]
    style: int


@dataclasses.dataclass(frozen=True)
class Scene:
    """Everything that defines one demo image, independent of its pixel size."""

    background: int  # 0 gradient, 1 stripes, 2 blotchy noise
    colors: tuple[tuple[int, int, int], tuple[int, int, int]]
    angle: float
    busy: float
    elements: tuple[Element, ...]
    score: float

    def count(self, kind: str) -> int:
        return sum(e.kind == kind for e in self.elements)


@dataclasses.dataclass(frozen=True)
class DemoSummary:
    """What :func:`make_demo_dataset` wrote."""

    root: Path
    count: int
    image_size: int
    users: list[str]
    splits: dict[str, int]  # image counts of split 1
    score_mean: float
    score_std: float
    folds: int = 1


def make_scene(seed: int, index: int) -> Scene:
    """The scene of image ``index`` for ``seed`` (pure function of both)."""
    rng = np.random.default_rng([seed, index, 0])
    counts = {"face": int(rng.integers(0, 4)), "bright": int(rng.integers(0, 5)),
              "text": int(rng.integers(0, 3)), "shape": int(rng.integers(0, 5))}
    busy = float(rng.uniform(0, 1))
    colors = tuple(tuple(int(c) for c in rng.integers(90, 170) + rng.integers(-15, 16, 3)) for _ in range(2))
    elements: list[Element] = []
    for kind in KINDS:
        for _ in range(counts[kind]):
            rx, ry, color = _element_look(kind, rng)
            cx, cy = _place(rng, rx, ry, elements)
            elements.append(Element(kind, cx, cy, rx, ry, color, int(rng.integers(0, 2**31))))
    mean = demo_score(counts["face"], counts["bright"], counts["text"], busy)
    score = float(np.clip(mean + rng.normal(0, SCORE_NOISE_SD), 0, 1))
    return Scene(int(rng.integers(0, 3)), colors, float(rng.uniform(0, math.pi)), busy, tuple(elements), score)  # type: ignore[arg-type]


def _element_look(kind: str, rng: np.random.Generator) -> tuple[float, float, tuple[int, int, int]]:
    if kind == "face":
        rx = float(rng.uniform(0.11, 0.14))
        return rx, rx * 1.3, SKIN_BGR[int(rng.integers(0, len(SKIN_BGR)))]
    if kind == "bright":
        hsv = np.array([[[rng.integers(0, 180), 255, 255]]], np.uint8)
        r = float(rng.uniform(0.09, 0.12))
        return r, r, tuple(int(c) for c in cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0])  # type: ignore[return-value]
    if kind == "text":
        return float(rng.uniform(0.15, 0.21)), float(rng.uniform(0.07, 0.11)), (int(rng.integers(225, 250)),) * 3  # type: ignore[return-value]
    grey = int(rng.integers(80, 200))
    r = float(rng.uniform(0.06, 0.12))
    return r, r, (grey, grey, grey)


def _place(rng: np.random.Generator, rx: float, ry: float, placed: list[Element]) -> tuple[float, float]:
    """A centre inside the frame that overlaps earlier elements little (best of 20 tries)."""
    best, best_gap = (0.5, 0.5), -np.inf
    for _ in range(20):
        cx, cy = float(rng.uniform(rx + 0.02, 0.98 - rx)), float(rng.uniform(ry + 0.02, 0.98 - ry))
        gap = min((math.hypot((cx - e.cx) / (rx + e.rx), (cy - e.cy) / (ry + e.ry)) for e in placed), default=np.inf)
        if gap >= 1.0:
            return cx, cy
        if gap > best_gap:
            best, best_gap = (cx, cy), gap
    return best


def render(scene: Scene, size: int, noise_seed: tuple[int, ...]) -> np.ndarray:
    """The scene as a uint8 BGR ``[size, size, 3]`` image."""
    rng = np.random.default_rng(noise_seed)
    u = (np.arange(size, dtype=np.float32) + 0.5) / size
    t = np.clip(u[None, :] * math.cos(scene.angle) + u[:, None] * math.sin(scene.angle), 0, 1.5) / 1.5
    c1, c2 = (np.array(c, np.float32) for c in scene.colors)
    image = c1 * (1 - t[..., None]) + c2 * t[..., None]
    if scene.background == 1:  # stripes: finer when busier
        period = 0.25 + (0.025 - 0.25) * scene.busy
        image += 40 * np.sin(2 * math.pi * (u[None, :] * math.sin(scene.angle) - u[:, None] * math.cos(scene.angle)) / period)[..., None]
    elif scene.background == 2:  # blotchy low-frequency noise
        image += 35 * cv2.resize(rng.standard_normal((4, 4, 3)).astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC)
    image += (45 * scene.busy) * rng.standard_normal((size, size, 3), dtype=np.float32)
    canvas = np.ascontiguousarray(np.clip(image, 0, 255).astype(np.uint8))
    for element in scene.elements:
        _draw(canvas, element, size)
    return canvas


_SHIFT = 4  # cv2 fixed-point bits: sub-pixel positions at small sizes


def _pt(x: float, y: float, size: int) -> tuple[int, int]:
    return int(round(x * size * 2**_SHIFT)), int(round(y * size * 2**_SHIFT))


def _ax(a: float, b: float, size: int) -> tuple[int, int]:
    return max(1, int(round(a * size * 2**_SHIFT))), max(1, int(round(b * size * 2**_SHIFT)))


def _draw(canvas: np.ndarray, e: Element, size: int) -> None:
    aa, sh = cv2.LINE_AA, _SHIFT
    if e.kind == "face":
        cv2.ellipse(canvas, _pt(e.cx, e.cy, size), _ax(e.rx, e.ry, size), 0, 0, 360, e.color, -1, aa, sh)
        for side in (-1, 1):
            eye = (e.cx + side * 0.38 * e.rx, e.cy - 0.18 * e.ry)
            cv2.ellipse(canvas, _pt(*eye, size), _ax(0.22 * e.rx, 0.13 * e.ry, size), 0, 0, 360, (250, 250, 250), -1, aa, sh)
            cv2.circle(canvas, _pt(*eye, size), _ax(0.1 * e.rx, 0, size)[0], (30, 20, 20), -1, aa, sh)
        cv2.ellipse(canvas, _pt(e.cx, e.cy + 0.45 * e.ry, size), _ax(0.4 * e.rx, 0.12 * e.ry, size), 0, 0, 360, (40, 40, 150), -1, aa, sh)
    elif e.kind == "text":
        cv2.rectangle(canvas, _pt(e.cx - e.rx, e.cy - e.ry, size), _pt(e.cx + e.rx, e.cy + e.ry, size), e.color, -1, aa, sh)
        glyphs = np.random.default_rng(e.style)
        rows = 3
        row_h = 2 * e.ry / (rows + 1)
        for r in range(rows):
            y0 = e.cy - e.ry + (r + 0.6) * row_h
            x = e.cx - e.rx + 0.1 * e.rx
            while True:
                width = float(glyphs.uniform(0.015, 0.035))
                if x + width > e.cx + 0.9 * e.rx:
                    break
                cv2.rectangle(canvas, _pt(x, y0, size), _pt(x + width, y0 + 0.55 * row_h, size), (40, 35, 30), -1, aa, sh)
                x += width + float(glyphs.uniform(0.008, 0.03))
    elif e.kind == "bright" and e.style % 2:
        cv2.rectangle(canvas, _pt(e.cx - e.rx, e.cy - e.ry, size), _pt(e.cx + e.rx, e.cy + e.ry, size), e.color, -1, aa, sh)
    elif e.kind == "bright" or e.style % 3 == 0:
        cv2.circle(canvas, _pt(e.cx, e.cy, size), _ax(e.rx, 0, size)[0], e.color, -1, aa, sh)
    elif e.style % 3 == 1:
        cv2.rectangle(canvas, _pt(e.cx - e.rx, e.cy - e.ry, size), _pt(e.cx + e.rx, e.cy + e.ry, size), e.color, -1, aa, sh)
    else:
        tri = np.array([_pt(e.cx, e.cy - e.ry, size), _pt(e.cx - e.rx, e.cy + e.ry, size), _pt(e.cx + e.rx, e.cy + e.ry, size)])
        cv2.fillPoly(canvas, [tri], e.color, aa, sh)


def user_map(scene: Scene, profile: int, size: int, seed: int, index: int) -> np.ndarray:
    """Gaze density of simulated user ``USER_PROFILES[profile]`` on a scene, float32 [size, size], max 1."""
    rng = np.random.default_rng([seed, index, 100 + profile])
    prefers = USER_PROFILES[profile][1]
    u = (np.arange(size, dtype=np.float32) + 0.5) / size
    centres = [(0.5, 0.5, 0.12, 0.12) if prefers == "center" else (0.5, 0.5, 0.2, 0.2)]
    weights = [1.0 if prefers == "center" else 0.3]
    for e in scene.elements:
        centres.append((e.cx, e.cy, 0.6 * e.rx, 0.6 * e.ry))
        base = 1.0 if e.kind == prefers else (0.15 if prefers == "center" else 0.08)
        weights.append(base * float(rng.uniform(0.7, 1.3)))
    c = np.array(centres, np.float32)
    gx = np.exp(-0.5 * ((u[None, :] - c[:, :1]) / c[:, 2:3]) ** 2)
    gy = np.exp(-0.5 * ((u[None, :] - c[:, 1:2]) / c[:, 3:4]) ** 2)
    heat = (gy * np.array(weights, np.float32)[:, None]).T @ gx
    return heat / heat.max()


def _fixation_rows(heat: np.ndarray, user: str, image: str, rng: np.random.Generator) -> list[str]:
    size = heat.shape[0]
    count = int(rng.integers(10, 18))
    prob = heat.ravel().astype(np.float64)
    flat = rng.choice(heat.size, size=count, p=prob / prob.sum())
    durations = rng.integers(120, 600, size=count)
    return [f"{user},{image},{f % size},{f // size},{d}" for f, d in zip(flat, durations)]


def make_demo_dataset(
    root: str | os.PathLike[str], count: int, image_size: int, users: int, seed: int, folds: int = 1
) -> DemoSummary:
    """Write the demo dataset to ``root`` (replaced as a whole, atomically) with ``folds`` train/val/test
    splits; byte-identical per seed (split 1 does not depend on ``folds``)."""
    root = Path(root)
    if count < 5:
        fail(f"the demo dataset needs at least 5 images (got {count})")
    if folds < 1:
        fail(f"the demo dataset needs at least 1 split (got --splits {folds})")
    if not 16 <= image_size <= 1024:
        fail(f"demo image size must be in 16..1024 (got {image_size})")
    if not 1 <= users <= len(USER_PROFILES):
        fail(f"the demo has 1 to {len(USER_PROFILES)} simulated users (got {users})")
    if root.exists() and any(root.iterdir()) and README_MARK not in _read_text(root / "README.txt"):
        fail(f"{root} exists and is not a memgaze demo dataset; refusing to overwrite it")
    names = [f"demo_{i:05d}" for i in range(count)]
    profiles = list(range(users))
    scores: list[float] = []
    fixations = ["user,image,x,y,duration_ms"]
    with atomic_dir(root) as tmp:
        (tmp / "images").mkdir()
        for p in profiles:
            (tmp / "gaze" / USER_PROFILES[p][0]).mkdir(parents=True)
        for i, name in enumerate(names):
            scene = make_scene(seed, i)
            scores.append(scene.score)
            image = render(scene, image_size, (seed, i, 1))
            _write(tmp / "images" / f"{name}.jpg", ".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
            for p in profiles:
                user = USER_PROFILES[p][0]
                heat = user_map(scene, p, image_size, seed, i)
                _write(tmp / "gaze" / user / f"{name}.png", ".png", np.rint(heat * 255).astype(np.uint8), [cv2.IMWRITE_PNG_COMPRESSION, 3])
                fixations += _fixation_rows(heat, user, f"{name}.jpg", np.random.default_rng([seed, i, 200 + p]))
        (tmp / "gaze" / FIXATIONS_NAME).write_text("\n".join(fixations) + "\n")
        splits = _write_splits(tmp / "splits", names, scores, seed, folds)
        (tmp / "README.txt").write_text(_readme(count, image_size, users, seed, folds))
    values = np.array(scores)
    return DemoSummary(root, count, image_size, [USER_PROFILES[p][0] for p in profiles], splits,
                       float(values.mean()), float(values.std()), folds)


def _write(path: Path, ext: str, array: np.ndarray, params: list[int]) -> None:
    ok, data = cv2.imencode(ext, array, params)
    if not ok:
        fail(f"could not encode {path}")
    path.write_bytes(data.tobytes())


def _write_splits(folder: Path, names: list[str], scores: list[float], seed: int, folds: int) -> dict[str, int]:
    """``folds`` independent 60/20/20 random train/val/test splits (LaMem's naming: ``train_k``, ``val_k``,
    ``test_k``), lines ``<name>.jpg <score>`` sorted by name; the counts of split 1, which ``folds`` leaves as it was."""
    folder.mkdir()
    n_train, n_val = round(0.6 * len(names)), round(0.2 * len(names))
    counts: dict[str, int] = {}
    for fold in range(1, folds + 1):
        stream = [seed, 2**31 - 1] if fold == 1 else [seed, 2**31 - 1, fold]
        order = np.random.default_rng(stream).permutation(len(names))
        parts = {"train": order[:n_train], "val": order[n_train : n_train + n_val], "test": order[n_train + n_val :]}
        for split, rows in parts.items():
            text = split_text(((f"{names[r]}.jpg", scores[r]) for r in sorted(rows)), digits=4)
            (folder / f"{split}_{fold}.txt").write_text(text)
        if fold == 1:
            counts = {split: len(rows) for split, rows in parts.items()}
    return counts


def _read_text(path: Path) -> str:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError):
        return ""


def _readme(count: int, size: int, users: int, seed: int, folds: int) -> str:
    buffer = io.StringIO()
    buffer.write(f"{README_MARK}: the images, scores and gaze here are SYNTHETIC.\n")
    buffer.write("They are procedural scenes, not photographs; no person's gaze was recorded.\n\n")
    buffer.write(f"generator: memgaze.train.data.demo, {count} images at {size}x{size}, {users} users, seed {seed}\n")
    buffer.write("score = clip(0.35 + 0.30*faces/3 + 0.25*bright/4 + 0.05*text/2 - 0.30*busy + N(0, 0.04^2), 0, 1)\n")
    buffer.write("users: " + ", ".join(f"{name} (prefers {kind})" for name, kind in USER_PROFILES[:users]) + "\n")
    splits = "splits/{train,val,test}_1.txt" if folds == 1 else f"splits/{{train,val,test}}_k.txt for k = 1..{folds}"
    buffer.write(f"layout: images/*.jpg, {splits}, gaze/<user>/*.png, gaze/fixations.csv\n")
    return buffer.getvalue()


def main_make_demo(
    out: str | os.PathLike[str], count: int, image_size: int, users: int, seed: int, folds: int = 1
) -> DemoSummary:
    """Make the demo dataset and print a one-line summary (for ``memgaze-train --make-demo-data``)."""
    start = time.perf_counter()
    summary = make_demo_dataset(out, count, image_size, users, seed, folds)
    console.print(
        f"wrote SYNTHETIC demo dataset {summary.root}: {count} images at {image_size}px, "
        f"{len(summary.users)} users ({', '.join(summary.users)}), "
        + (f"{folds} splits of " if folds > 1 else "splits ")
        + "/".join(f"{k} {v}" for k, v in summary.splits.items())
        + f", score mean {summary.score_mean:.2f} sd {summary.score_std:.2f}, seed {seed}, "
        f"{time.perf_counter() - start:.1f}s",
        soft_wrap=True,
    )
    return summary
