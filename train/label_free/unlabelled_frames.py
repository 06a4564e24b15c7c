"""Unlabelled frames → a LaMem-layout dataset scored by an external teacher (``--teacher-model``).

``--data FOLDER`` holds images and/or videos (recursively; a dataset root with ``images/`` is
read from there, its splits ignored). Videos give every K-th frame, near-duplicates skipped.
Everything lands in ``OUT/label-free/``: ``images/`` (images linked, other formats as PNG, video
frames as ``<video stem>_f<index>.jpg``), ``splits/{train,val,test}_<fold>.txt`` holding the
teacher's scores (a deterministic 80/10/10 split: images by name hash, video frames by stretches of
consecutive frames, so that near-identical neighbours never sit on both sides), ``gaze`` (a link to
``FOLDER/gaze`` when there is one, so gaze imitation and user conditioning still apply) and
``targets.npz``: the teacher's map
of each kept frame, which the student learns as the generic viewer's map, and its features, where it
gives them (feature distillation). The teacher's outputs are
cached in the user cache (:mod:`memgaze.user_cache`, ``teacher-outputs/``), keyed by the teacher and
the frames' names and contents, so a second run (any ``--out``, any seed) does not recompute them.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from rich.progress import Progress

from memgaze.atomic import write_bytes, write_text
from memgaze.console import WarningCounter, console
from memgaze.errors import fail
from memgaze.manifest import sha256_file
from memgaze.user_cache import user_cache_dir
from memgaze.media import IMAGE_SUFFIXES, VIDEO_SUFFIXES, VideoSampler, list_media
from memgaze.train.label_free.external_teacher import ExternalTeacher, TeacherOutput
from memgaze.layout import IMAGE_EXTENSIONS, SPLITS, gaze_dir, split_path

FOLDER = "label-free"
TARGETS_FILE = "targets.npz"
MIN_FRAMES = 10
HELD_OUT = 0.1  # fraction of frames for val and for test, each
STRETCH_MAX = 10  # sampled frames of a video that stay together in one split (fewer in a short video)
BATCH = 16
SAVE_EVERY = 32 * BATCH  # frames between saves of a teacher's outputs being computed
JPEG_QUALITY = 95


@dataclass
class LabelFreeData:
    """The written dataset root and what the report says about it."""

    root: Path
    summary: dict[str, Any]


def prepare(
    source: Path, out: Path, teacher: ExternalTeacher, *, every: int, min_change: float, fold: int, warnings: WarningCounter
) -> LabelFreeData:
    """Collect the frames of ``source``, score them with ``teacher`` (cached) and write the splits."""
    root = out / FOLDER
    frames = collect_frames(source, root / "images", every, min_change, warnings)
    names = frames.names
    output, reused = teacher_outputs(teacher, root, names, warnings)
    scores = output.scores
    usable = np.isfinite(scores)
    if usable.sum() < MIN_FRAMES:
        fail(f"--data {source}: {int(usable.sum())} frame(s) could be read and scored; need at least {MIN_FRAMES}")
    kept = [n for n, ok in zip(names, usable) if ok]
    groups = [g for g, ok in zip(frames.groups, usable) if ok]
    values = scores[usable]
    low, high = float(values.min()), float(values.max())
    if high - low < 1e-9:
        fail(f"{teacher.name} gives every frame of {source} the same score ({low:.4g}); there is nothing to distil")
    rescaled = low < 0 or high > 1
    if rescaled:  # the LaMem layout holds scores in [0, 1]; ranks (what Spearman measures) are unchanged
        values = (values - low) / (high - low)
    sizes = write_splits(root, kept, values, fold, groups)
    write_targets(root, kept, *(None if v is None else v[usable] for v in (output.maps, output.features)))
    _link_gaze(source, root)
    summary = {
        "teacher_model": teacher.name,
        "teacher_version": teacher.version,
        "teacher_map": teacher.has_map,
        "source": str(source),
        **frames.counts,
        "frames": len(kept),
        **sizes,
        "teacher_score_range": [low, high],
        "scores_rescaled": rescaled,
        "teacher_outputs": "reused from cache" if reused else "computed",
    }
    return LabelFreeData(root, summary)


@dataclass
class Frames:
    """Collected frames: names (relative, '/'-separated), the split group of each, and counts."""

    names: list[str]
    groups: list[str]
    counts: dict[str, Any]


def collect_frames(source: Path, folder: Path, every: int, min_change: float, warnings: WarningCounter) -> Frames:
    """Fill ``folder`` (rebuilt) with the frames of ``source``. An image is its own split group; a
    video's sampled frames form groups of up to :data:`STRETCH_MAX` consecutive ones."""
    media_root = source / "images" if (source / "images").is_dir() else source
    images, videos = list_media(media_root, "--data folder", skip=gaze_dir(source))
    if not images and not videos:
        kinds = ", ".join(sorted(IMAGE_SUFFIXES | VIDEO_SUFFIXES))
        fail(f"--data {source} has no image or video files ({kinds})")
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    names: list[str] = []
    groups: list[str] = []
    for image in images:
        rel = _safe_name(image.relative_to(media_root))
        if rel.suffix.lower() in IMAGE_EXTENSIONS:
            _link_or_copy(image, folder / rel)
        else:  # a format the LaMem loaders do not read: re-encoded losslessly
            frame = cv2.imread(str(image), cv2.IMREAD_COLOR)
            rel = rel.with_suffix(".png")
            if frame is None or (folder / rel).exists():
                warnings.warn("unreadable image", f"cannot read {image} (or its name is taken); skipped")
                continue
            _write_frame(folder / rel, frame)
        names.append(rel.as_posix())
        groups.append(rel.as_posix())
    sampler = VideoSampler(every, min_change)
    for video in videos:
        rel = _safe_name(video.relative_to(media_root))
        before = len(names)
        for index, frame in sampler.frames(video):
            name = (rel.parent / f"{rel.stem}_f{index:06d}.jpg").as_posix()
            _write_frame(folder / name, frame)
            names.append(name)
        if len(names) == before:
            warnings.warn("unreadable video", f"cannot read video {video}; skipped")
        stretch = max(1, min(STRETCH_MAX, (len(names) - before) // 10))  # at least ~10 groups per video
        groups.extend(f"{rel.as_posix()}#{k // stretch}" for k in range(len(names) - before))
    counts = {
        "images": len(images),
        "videos": len(videos),
        "video_every": every,
        "video_frames_sampled": sampler.sampled,
        "near_duplicates_skipped": sampler.duplicates,
    }
    return Frames(names, groups, counts)


def teacher_outputs(
    teacher: ExternalTeacher, root: Path, names: list[str], warnings: WarningCounter
) -> tuple[TeacherOutput, bool]:
    """The teacher's score of every frame of ``root/images`` (NaN where unreadable) and, when it gives them,
    its map (``[n, h, w]``) and features (``[n, d]``; zero where unreadable), and whether they all came from the cache.

    The cache file is written every :data:`SAVE_EVERY` frames too, so an interrupted run resumes where it stopped.
    A frame whose contents some other cache file of the same teacher already holds (a subset or a superset of
    frames scored before, under any names) is taken from there, not computed again."""
    hashes = [sha256_file(root / "images" / name) for name in names]
    cache = user_cache_dir("teacher-outputs") / f"{cache_key(teacher, names, hashes)[:32]}.npz"
    scores, extra, known = _read_outputs(cache, names)
    if known.all():
        console.print(f"teacher outputs of {len(names)} frames reused from {cache}")
        return TeacherOutput(scores, extra.get("maps"), extra.get("features")), True
    reused = _reuse_frames(cache, teacher.identity, hashes, known, scores, extra)
    pending = np.flatnonzero(~known)
    kept = f", {len(names) - len(pending)} taken from the cache" if len(pending) < len(names) else ""
    console.print(f"scoring {len(pending)} frames with {teacher.describe()}{kept}")
    if reused:
        _write_outputs(cache, names, hashes, teacher.identity, scores, extra, known)
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task(f"{teacher.name}", total=len(pending))
        for start in range(0, len(pending), BATCH):
            frames, rows = [], []
            for row in pending[start : start + BATCH]:
                frame = cv2.imread(str(root / "images" / names[row]), cv2.IMREAD_COLOR)
                if frame is None:
                    warnings.warn("unreadable image", f"cannot decode {root / 'images' / names[row]}; skipped")
                    continue
                frames.append(frame)
                rows.append(row)
            if frames:
                output = teacher.predict(frames)
                scores[rows] = output.scores
                for key_name, values in (("maps", output.maps), ("features", output.features)):
                    if values is not None:
                        extra.setdefault(key_name, np.zeros((len(names), *values.shape[1:]), np.float32))[rows] = values
            known[pending[start : start + BATCH]] = True
            progress.advance(task, len(pending[start : start + BATCH]))
            done = min(start + BATCH, len(pending))
            if done % SAVE_EVERY == 0 or done == len(pending):
                _write_outputs(cache, names, hashes, teacher.identity, scores, extra, known)
    return TeacherOutput(scores, extra.get("maps"), extra.get("features")), False


def _read_outputs(cache: Path, names: list[str]) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
    """Scores, maps/features and which frames are done, from a (possibly partial) cache of these ``names``."""
    if cache.is_file():
        with np.load(cache, allow_pickle=False) as saved:
            if saved["names"].tolist() == names:
                extra = {k: saved[k].astype(np.float32) for k in ("maps", "features") if k in saved.files}
                if "known" in saved.files:
                    known = saved["known"].astype(bool)
                else:  # written before frames could be taken from other files: the first ``done`` are done
                    known = np.arange(len(names)) < (int(saved["done"]) if "done" in saved.files else len(names))
                return saved["scores"].copy(), extra, known
    return np.full(len(names), np.nan), {}, np.zeros(len(names), bool)


def _reuse_frames(cache: Path, identity: str, hashes: list[str], known: np.ndarray, scores: np.ndarray,
                  extra: dict[str, np.ndarray]) -> int:
    """Fill the frames not ``known`` from the other cache files of the teacher ``identity`` that scored the same
    contents (by sha256); returns how many were filled."""
    wanted = {digest: row for row, digest in enumerate(hashes) if not known[row]}
    filled = 0
    for other in sorted(cache.parent.glob("*.npz")):
        if other == cache or not wanted:
            continue
        with np.load(other, allow_pickle=False) as saved:
            if "identity" not in saved.files or str(saved["identity"]) != identity:
                continue
            for source, digest in enumerate(saved["hashes"].tolist()):
                row = wanted.get(digest)
                if row is None or not saved["known"][source]:
                    continue
                scores[row] = saved["scores"][source]
                for key_name in ("maps", "features"):
                    if key_name in saved.files:
                        values = saved[key_name]
                        extra.setdefault(key_name, np.zeros((len(hashes), *values.shape[1:]), np.float32))[row] = values[source]
                known[row] = True
                del wanted[digest]
                filled += 1
    return filled


def _write_outputs(cache: Path, names: list[str], hashes: list[str], identity: str, scores: np.ndarray,
                   extra: dict[str, np.ndarray], known: np.ndarray) -> None:
    buffer = io.BytesIO()
    arrays: dict[str, Any] = {k: v.astype(np.float16) for k, v in extra.items()}
    np.savez(buffer, names=np.array(names, dtype=str), hashes=np.array(hashes, dtype=str), identity=np.array(identity),
             scores=scores, known=known, **arrays)
    write_bytes(cache, buffer.getvalue())


@dataclass
class TeacherTargets:
    """What a teacher gave beyond scores, by frame name: maps and features (None: it gave none)."""

    maps: dict[str, np.ndarray] | None
    features: dict[str, np.ndarray] | None


def write_targets(root: Path, names: list[str], maps: np.ndarray | None, features: np.ndarray | None) -> None:
    """``root/targets.npz``: the teacher's map and features of each named frame (neither: no file)."""
    path = root / TARGETS_FILE
    given: dict[str, Any] = {k: v.astype(np.float16) for k, v in (("maps", maps), ("features", features)) if v is not None}
    if not given:
        path.unlink(missing_ok=True)
        return
    buffer = io.BytesIO()
    np.savez(buffer, names=np.array(names, dtype=str), **given)
    write_bytes(path, buffer.getvalue())


def read_targets(root: Path) -> TeacherTargets:
    """What :func:`write_targets` wrote under ``root``, as float32 arrays by frame name."""
    path = root / TARGETS_FILE
    if not path.is_file():
        return TeacherTargets(None, None)
    with np.load(path, allow_pickle=False) as saved:
        names = saved["names"].tolist()
        found = {k: dict(zip(names, saved[k].astype(np.float32))) if k in saved.files else None for k in ("maps", "features")}
    return TeacherTargets(found["maps"], found["features"])


def cache_key(teacher: ExternalTeacher, names: list[str], hashes: list[str]) -> str:
    """sha256 of the teacher's identity and the sorted (name, content sha256) list of the frames."""
    digest = hashlib.sha256(teacher.identity.encode())
    for name, content in sorted(zip(names, hashes)):
        digest.update(f"\n{name}\t{content}".encode())
    return digest.hexdigest()


def write_splits(root: Path, names: list[str], scores: np.ndarray, fold: int, groups: list[str]) -> dict[str, int]:
    """Deterministic split of whole groups in the order of their names' hashes: at least 10% of the
    frames held out (test), as many for val, the rest train."""
    members: dict[str, list[int]] = {}
    for index, group in enumerate(groups):
        members.setdefault(group, []).append(index)
    order = sorted(members, key=lambda g: hashlib.sha256(g.encode()).hexdigest())
    held = max(1, round(len(names) * HELD_OUT))
    parts: dict[str, list[int]] = {"test": [], "val": [], "train": []}
    for group in order:
        split = next((s for s in ("test", "val") if len(parts[s]) < held), "train")
        parts[split].extend(members[group])
    for split in SPLITS:
        lines = [f"{names[i]} {scores[i]:.6f}\n" for i in sorted(parts[split], key=lambda i: names[i])]
        write_text(split_path(root, split, fold), "".join(lines))
    return {"train": len(parts["train"]), "val": len(parts["val"]), "held_out": len(parts["test"])}


def _link_gaze(source: Path, root: Path) -> None:
    """``root/gaze`` → ``source/gaze`` when the source has gaze data; no gaze folder otherwise."""
    link = gaze_dir(root)
    if link.is_symlink() or link.is_file():
        link.unlink()
    elif link.is_dir():
        shutil.rmtree(link)
    if gaze_dir(source).is_dir():
        os.symlink(gaze_dir(source).resolve(), link, target_is_directory=True)


def _safe_name(rel: Path) -> Path:
    """Whitespace in names would break the split files' ``<name> <score>`` lines."""
    return Path(re.sub(r"\s+", "_", rel.as_posix()))


def _link_or_copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.symlink(source.resolve(), target)
    except OSError:
        shutil.copy2(source, target)


def _write_frame(path: Path, frame: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    params = [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY] if path.suffix == ".jpg" else []
    ok, data = cv2.imencode(path.suffix, frame, params)
    if not ok:
        fail(f"cannot encode frame {path}")
    write_bytes(path, data.tobytes())
