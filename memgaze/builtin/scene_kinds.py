"""Groups of similar photos among the built-in model's photos: by package, and by the kind of scene they show.

A user ranks one collection at a time (a trip, a product shoot), so agreement is also measured inside groups of
photos of one kind (``memgaze-bench agreement`` reads ``groups.json`` beside the photos). The scene kind of each
photo was assigned by looking at it, written as rules on its name (``<package>__<stem>``, as
:mod:`memgaze.builtin.photos` names it; a training crop's ``_c<k>`` suffix is ignored): the first rule whose
pattern matches wins. Most rules name a folder of one package (gcompris' fish, monuments, tools); the others
name single photos of mixed packages. ``other`` holds what is no scene of one kind (textures, microscopy,
paintings, digital art): it is reported but left out of the mean over kinds.
"""

from __future__ import annotations

import fnmatch
import re

KINDS = ("animals", "underwater", "buildings", "landscapes", "plants", "objects", "people")
OTHER = "other"
GROUPINGS = ("scene", "package")

_GC = "gcompris-qt-data__"
RULES: tuple[tuple[str, str], ...] = (
    # gcompris-qt-data: by the folder (activity) a photo comes from, with the exceptions first
    (f"{_GC}usa-canyondeChelly", "landscapes"),
    (f"{_GC}others-igloo", "buildings"),
    (f"{_GC}resource-sea?", "underwater"),
    (f"{_GC}resource-dolphin", "underwater"),
    (f"{_GC}fishes-*", "underwater"),
    (f"{_GC}music-africa", "objects"), (f"{_GC}music-america", "objects"), (f"{_GC}music-middleeast", "objects"),
    (f"{_GC}music-*", "people"),
    (f"{_GC}animals-*", "animals"),
    (f"{_GC}resource-*", "animals"),  # explore_*_animals
    (f"{_GC}tools-*", "objects"),
    (f"{_GC}others-*", "objects"),
    (f"{_GC}*", "buildings"),  # monuments, explore_monuments, details' landmarks, renewable-energy installations
    # kphotoalbum's demo album: people, but for its pets and its landscapes
    ("kphotoalbum__donna*", "animals"), ("kphotoalbum__spiff*", "animals"), ("kphotoalbum__blackie", "animals"),
    ("kphotoalbum__grand_canyon_3", "landscapes"), ("kphotoalbum__skagen*", "landscapes"),
    ("kphotoalbum__snow", "landscapes"), ("kphotoalbum__sunset", "landscapes"),
    ("kphotoalbum__*", "people"),
    # wallpapers and sample images, photo by photo
    *((f"{name}", kind) for kind, names in {
        "animals": ("lomiri-wallpapers-16.04__free_by_Peter_Nerlich", "lomiri-wallpapers-16.04__friends_by_Aitzol_Berasategi",
                    "lomiri-wallpapers-20.04__Kleiber_by_Lukas_Baubkus", "lxqt-themes__Butterfly-Kenneth-Wimer",
                    "lxqt-themes__butterfly", "opencv-doc__000", "opencv-doc__baboon", "opencv-doc__butterfly",
                    "opencv-doc__squirrel_cls", "palapeli-data__european-honey-bee", "palapeli-data__panther-chameleon-female",
                    "scikit-image__chelsea"),
        "buildings": ("lomiri-wallpapers-16.04__Bridge_by_Sander_Klootwijk", "opencv-doc__building", "opencv-doc__home",
                      "opencv-doc__leuvenA", "opencv-doc__scenetext0?", "palapeli-data__castle-maintenon",
                      "palapeli-data__cincinnati-bridge", "scikit-learn__china"),
        "plants": ("lomiri-wallpapers-16.04__Dragonfly_by_Bolly", "lomiri-wallpapers-16.04__seeding_by_Clements_Engelhardt",
                   "lxqt-themes__appleflower", "lxqt-themes__drop", "lxqt-themes__flowers", "mate-backgrounds__Blinds",
                   "mate-backgrounds__FreshFlower", "mate-backgrounds__Garden", "mate-backgrounds__GreenMeadow",
                   "mate-backgrounds__LadyBird", "mate-backgrounds__RainDrops", "mate-backgrounds__TwoWings",
                   "mate-backgrounds__YellowFlower", "opencv-doc__aloeL", "opencv-doc__plant", "plasma-workspace-wallpapers__FallenLeaf",
                   "plasma-workspace-wallpapers__OneStandsOut", "scikit-learn__flower"),
        "objects": ("lomiri-wallpapers-16.04__Picture_??_by_freespace", "lomiri-wallpapers-16.04__Wine_by_Jakkub_Mede",
                    "lomiri-wallpapers-16.04__greentock_by_Peter_Nerlich", "opencv-doc__apple", "opencv-doc__board",
                    "opencv-doc__box_in_scene", "opencv-doc__fruits", "opencv-doc__orange", "opencv-doc__rubberwhale1",
                    "opencv-doc__smarties", "palapeli-data__citrus-fruits", "plasma-workspace-wallpapers__ColorfulCups",
                    "scikit-image__clock_motion", "scikit-image__coffee", "scikit-image__coins", "scikit-image__motorcycle_left",
                    "scikit-image__rocket"),
        "people": ("matplotlib__grace_hopper", "opencv-doc__basketball1", "opencv-doc__messi5", "scikit-image__astronaut",
                   "scikit-image__camera"),
        OTHER: ("lomiri-wallpapers-16.04__analogpattern_by_Peter_Nerlich", "lomiri-wallpapers-20.04__Infinite-Sea_by_Aury88",
                "mate-backgrounds__Aqua", "mate-backgrounds__Elephants", "mate-backgrounds__GreenTraditional",
                "mate-backgrounds__Wood", "opencv-doc__graf1", "opencv-doc__starry_night", "plasma-workspace-wallpapers__Autumn",
                "plasma-workspace-wallpapers__Grey", "plasma-workspace-wallpapers__PastelHills", "scikit-image__*"),
    }.items() for name in names),
    # what is left of the wallpapers and of opencv-doc's aerial photos: landscapes
    ("lomiri-wallpapers-*", "landscapes"), ("lxqt-themes__*", "landscapes"), ("mate-backgrounds__*", "landscapes"),
    ("plasma-workspace-wallpapers__*", "landscapes"), ("opencv-doc__aero?", "landscapes"),
)
_CROP = re.compile(r"_c\d+$")


def photo_stem(name: str) -> str:
    """``<package>__<stem>`` of a photo or training-crop file name (folder, extension and crop suffix dropped)."""
    stem = name.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    return _CROP.sub("", stem)


def package_of(name: str) -> str:
    """The package a photo was taken from (its name's prefix before ``__``)."""
    return photo_stem(name).split("__", 1)[0]


def scene_kind(name: str) -> str:
    """The scene kind of a photo (one of :data:`KINDS`, or :data:`OTHER` where no rule names it)."""
    stem = photo_stem(name)
    return next((kind for pattern, kind in RULES if fnmatch.fnmatchcase(stem, pattern)), OTHER)


def photo_groups(names: list[str]) -> dict[str, dict[str, str]]:
    """``groups.json``'s content for these photos: each grouping (:data:`GROUPINGS`) → photo name → its group
    (photos of no scene kind are left out of the scene grouping, which comes first: training reads the first)."""
    kinds = {n: scene_kind(n) for n in names}
    return {"scene": {n: k for n, k in kinds.items() if k != OTHER}, "package": {n: package_of(n) for n in names}}
