"""Finite sources as collections of files, each named by its path relative to the collection's root.

A collection is a folder (its sub-folders too, unless ``recursive`` is False), a glob (``photos/**/*.jpg``;
the root is the folder before the first wildcard), a text file of paths (one a line; blank lines and
``#`` comments skipped; relative paths are relative to the list's folder, which is the root), or one
image or video file (its folder is the root). Hidden files and folders are left out of folders and globs.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path

from memgaze.errors import fail
from memgaze.media import PHOTO_SUFFIXES, VIDEO_SUFFIXES, list_media

LIST_SUFFIXES = frozenset({".txt", ".lst", ".list"})
GALLERY_MARKER = ".memgaze-gallery"  # in a folder memgaze-run --report wrote: its thumbnails are never photos to score
GLOB_CHARACTERS = frozenset("*?[")
KINDS = ", ".join(sorted(PHOTO_SUFFIXES | VIDEO_SUFFIXES))


@dataclass(frozen=True)
class MediaItem:
    """One file of a collection: where it is, its name (POSIX path relative to the root), and whether it is a video."""

    path: Path
    name: str
    video: bool


def file_identity(path: Path) -> tuple[int, int] | None:
    """A file's (size in bytes, modification time in ns): what tells a resumed run that it was already scored as it is;
    None when it cannot be read."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_size, info.st_mtime_ns


def is_glob(text: str) -> bool:
    """Whether ``text`` is a wildcard pattern rather than a path."""
    return any(char in GLOB_CHARACTERS for char in text)


def glob_root(pattern: str) -> Path:
    """The folder a pattern's names are relative to: its parts before the first one with a wildcard."""
    parts = Path(pattern).parts
    fixed = next((i for i, part in enumerate(parts) if is_glob(part)), len(parts))
    return Path(*parts[:fixed]) if fixed else Path(".")


def _item(path: Path, root: Path) -> MediaItem:
    try:
        name = path.relative_to(root).as_posix()
    except ValueError:  # a listed path outside the list's folder keeps the path as written
        name = path.as_posix()
    return MediaItem(path, name, path.suffix.lower() in VIDEO_SUFFIXES)


def folder_items(folder: Path, recursive: bool = True) -> list[MediaItem]:
    """The images and videos of ``folder`` in name order, galleries memgaze wrote left out; one-line error when there
    are none."""
    images, videos = list_media(folder, "folder", recursive=recursive, image_suffixes=PHOTO_SUFFIXES)
    galleries = {marker.parent for marker in (folder.rglob(GALLERY_MARKER) if recursive else folder.glob(GALLERY_MARKER))}
    items = sorted((_item(path, folder) for path in images + videos if galleries.isdisjoint(path.parents)),
                   key=lambda item: item.name)
    if not items:
        hint = " (and none in its sub-folders)" if recursive else "; its sub-folders are left out with --no-recursive"
        fail(f"folder {folder} has no images or videos ({KINDS}){hint}")
    return items


def glob_items(pattern: str) -> list[MediaItem]:
    """The image and video files a pattern matches (``**`` spans folders), in name order."""
    root = glob_root(pattern)
    paths = [Path(p) for p in glob.glob(pattern, recursive=True)]
    items = sorted(
        (_item(path, root) for path in paths
         if path.is_file() and path.suffix.lower() in PHOTO_SUFFIXES | VIDEO_SUFFIXES
         and not any(part.startswith(".") for part in path.relative_to(root).parts)),
        key=lambda item: item.name,
    )
    if not items:
        fail(f"no image or video file matches {pattern!r} ({KINDS})")
    return items


def list_file_items(listing: Path) -> list[MediaItem]:
    """The paths a text file lists, in its order; missing files stay in (they are counted as unreadable when read)."""
    try:
        lines = listing.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"cannot read the list of paths {listing}: {exc}")
    root = listing.parent
    paths = [Path(line.strip()) for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not paths:
        fail(f"the list of paths {listing} names no file (one path a line)")
    return [_item(path if path.is_absolute() else root / path, root) for path in paths]


def file_item(path: Path) -> MediaItem:
    """One image or video file; a suffix that is not an image's is read as a video."""
    return MediaItem(path, path.name, path.suffix.lower() not in PHOTO_SUFFIXES)
