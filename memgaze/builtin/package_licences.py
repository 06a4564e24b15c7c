"""The licence of one file of a registry package, from what the package itself says.

In order:

1. Debian's machine-readable ``usr/share/doc/<package>/copyright`` (DEP-5): the last ``Files:``
   paragraph that names the file wins, as the format prescribes. Patterns name paths of the
   upstream source tree, which an installed (or resource-bundled, or re-encoded) file may carry
   under another prefix and another image extension: a pattern matches a path's tail, a pattern
   without wildcards also matches by file name, and image extensions are compared loosely.
2. A KDE ``.desktop`` file beside the image (``X-KDE-PluginInfo-License`` / ``-Author``).
3. The licence stated for the whole source by whoever listed it (which says when it is the
   package's catch-all ``Files: *`` paragraph: that paragraph alone is too coarse to pick).
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".svg", ".bmp", ".tif", ".tiff")


@dataclass(frozen=True)
class FilesParagraph:
    """One ``Files:`` paragraph: its patterns and the licence line built from it."""

    patterns: tuple[str, ...]
    licence: str


def parse_dep5(text: str) -> list[FilesParagraph]:
    """The ``Files:`` paragraphs of a DEP-5 copyright file, in order (empty for a free-form file)."""
    if not text.startswith("Format:"):
        return []
    paragraphs = []
    for block in re.split(r"\n\s*\n", text):
        fields = _fields(block)
        if "files" not in fields or "license" not in fields:
            continue
        holder = fields.get("copyright", "").splitlines()[0].strip() if fields.get("copyright") else ""
        comment = next((w for w in fields.get("comment", "").split() if w.startswith("http")), "")
        licence = fields["license"].splitlines()[0].strip()
        details = "; ".join(v for v in (holder, comment) if v)
        paragraphs.append(FilesParagraph(tuple(fields["files"].split()), f"{licence} ({details})" if details else licence))
    return paragraphs


def _fields(block: str) -> dict[str, str]:
    """``Name: value`` fields of one paragraph (continuation lines joined with newlines), names lower-cased."""
    fields: dict[str, str] = {}
    current = None
    for line in block.splitlines():
        if line[:1] in (" ", "\t") and current:
            fields[current] += "\n" + line.strip()
        elif ":" in line:
            current, _, value = line.partition(":")
            current = current.strip().lower()
            fields[current] = value.strip()
    return fields


def dep5_licence(paragraphs: list[FilesParagraph], member: str) -> str | None:
    """The licence of ``member`` (a path inside the package) by the last paragraph that names it, or None
    (the catch-all ``Files: *`` names nothing in particular)."""
    found = None
    for paragraph in paragraphs:
        if any(_matches(pattern, member) for pattern in paragraph.patterns if pattern != "*"):
            found = paragraph.licence
    return found


def _matches(pattern: str, member: str) -> bool:
    path, wanted = _loose(member), _loose(pattern)
    if fnmatch.fnmatchcase(path, wanted) or fnmatch.fnmatchcase(path, "*/" + wanted):
        return True
    plain = not any(c in pattern for c in "*?[")
    return plain and PurePosixPath(path).name == PurePosixPath(wanted).name


def _loose(path: str) -> str:
    """A path with its image extension dropped (a file may be shipped re-encoded)."""
    pure = PurePosixPath(path)
    return str(pure.with_suffix("")) if pure.suffix.lower() in IMAGE_SUFFIXES else path


def desktop_licence(image: Path) -> str | None:
    """Licence and author from a KDE ``.desktop`` file beside ``image``, or None."""
    desktop = image.with_suffix(".desktop")
    if not desktop.is_file():
        return None
    values = dict(line.split("=", 1) for line in desktop.read_text(errors="replace").splitlines() if "=" in line)
    licence = values.get("X-KDE-PluginInfo-License", "").strip()
    author = values.get("X-KDE-PluginInfo-Author", "").strip()
    return f"{licence} ({author})" if licence and author else licence or None


def file_licence(root: Path, package: str, member: str, fallback: str) -> str:
    """The licence of ``member`` of ``package`` unpacked at ``root``: its DEP-5 paragraph, a ``.desktop``
    beside it, else ``fallback``."""
    copyright_file = root / "usr" / "share" / "doc" / package / "copyright"
    if copyright_file.is_file():
        found = dep5_licence(parse_dep5(copyright_file.read_text(errors="replace")), member)
        if found:
            return found
    return desktop_licence(root / member) or fallback
