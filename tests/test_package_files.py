"""Reading photos out of registry packages: Qt resource bundles (made here by Qt's own rcc) and each file's
licence from what its package states (Debian DEP-5 copyright files, KDE .desktop files)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from memgaze.errors import MemgazeError
from memgaze.builtin.package_licences import dep5_licence, file_licence, parse_dep5
from memgaze.builtin.qt_resources import rcc_files

RCC = shutil.which("rcc") or next((p for p in ("/usr/lib/qt5/bin/rcc", "/usr/lib/qt6/libexec/rcc") if os.path.exists(p)), None)


def make_rcc(folder: Path, files: dict[str, bytes], *options: str) -> Path:
    """A binary resource bundle of ``files`` written by Qt's rcc with ``options``."""
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    entries = "".join(f"<file>{name}</file>" for name in files)
    (folder / "r.qrc").write_text(f'<RCC><qresource prefix="/app">{entries}</qresource></RCC>')
    subprocess.run([RCC, "-binary", *options, "r.qrc", "-o", "r.rcc"], cwd=folder, check=True, capture_output=True)
    return folder / "r.rcc"


@pytest.mark.skipif(RCC is None, reason="Qt's rcc is not installed (Debian: qtbase5-dev-tools; .ci/run installs it)")
@pytest.mark.parametrize("version", ["1", "2", "3"])
def test_every_file_of_a_bundle_comes_back_byte_for_byte(tmp_path: Path, version: str) -> None:
    files = {"photos/a.jpg": np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes(),  # stored as is
             "photos/deep/b.txt": b"compressible " * 400, "c.txt": b""}  # zlib-compressed
    bundle = make_rcc(tmp_path, files, "--format-version", version)
    assert dict(rcc_files(bundle)) == {f"app/{name}": data for name, data in files.items()}


@pytest.mark.skipif(RCC is None, reason="Qt's rcc is not installed (Debian: qtbase5-dev-tools; .ci/run installs it)")
def test_zstd_data_is_a_one_line_error(tmp_path: Path) -> None:
    try:
        bundle = make_rcc(tmp_path, {"b.txt": b"compressible " * 400}, "--compress-algo", "zstd")
    except subprocess.CalledProcessError:
        pytest.skip("this rcc was built without zstd (Debian's is built with it)")
    with pytest.raises(MemgazeError, match="zstd-compressed"):
        list(rcc_files(bundle))


def test_a_foreign_file_is_a_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "x.rcc").write_bytes(b"not a resource file")
    with pytest.raises(MemgazeError, match="not a compiled Qt resource file"):
        list(rcc_files(tmp_path / "x.rcc"))


COPYRIGHT = """Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: example

Files: *
Copyright: 2020 The Example Authors
License: GPL-3+

Files: src/activities/fish/resource/images/*
Copyright: 2015 Some Artist
License: CC-BY-SA-4.0

Files: src/activities/fish/resource/images/fish2.jpg
Copyright: Duane Raver
License: public-domain
Comment: https://commons.wikimedia.org/wiki/File:Fish.png

Files: 16.04/Bridge_by_Someone.jpg
Copyright: 2018. Someone
License: CC-BY-4.0

License: GPL-3+
 The full text of the licence.
"""


def test_the_last_paragraph_naming_a_file_wins_as_dep5_says() -> None:
    paragraphs = parse_dep5(COPYRIGHT)
    assert [p.patterns for p in paragraphs][0] == ("*",) and len(paragraphs) == 4  # the stand-alone licence text is not one
    bundled = "rcc/fish/app/src/activities/fish/resource/images/fish2.webp"  # another prefix, re-encoded
    assert dep5_licence(paragraphs, bundled) == "public-domain (Duane Raver; https://commons.wikimedia.org/wiki/File:Fish.png)"
    assert dep5_licence(paragraphs, "rcc/fish/app/src/activities/fish/resource/images/fish1.webp") == "CC-BY-SA-4.0 (2015 Some Artist)"
    assert dep5_licence(paragraphs, "usr/share/backgrounds/Bridge_by_Someone.jpg") == "CC-BY-4.0 (2018. Someone)"  # by name
    assert dep5_licence(paragraphs, "usr/share/example/other.png") is None  # only the catch-all: too coarse to pick
    assert parse_dep5("This package was debianized by someone.\n\nLicense: GPL") == []  # free-form: nothing


def test_file_licence_reads_the_package_then_a_desktop_file_then_the_fallback(tmp_path: Path) -> None:
    doc = tmp_path / "usr" / "share" / "doc" / "pkg"
    doc.mkdir(parents=True)
    (doc / "copyright").write_text(COPYRIGHT)
    photos = tmp_path / "usr" / "share" / "pkg"
    photos.mkdir(parents=True)
    (photos / "bee.desktop").write_text("[Desktop Entry]\nX-KDE-PluginInfo-Author=John Severns\nX-KDE-PluginInfo-License=Public Domain\n")
    assert file_licence(tmp_path, "pkg", "usr/share/pkg/bee.jpg", "fallback") == "Public Domain (John Severns)"
    assert file_licence(tmp_path, "pkg", "usr/share/pkg/cat.jpg", "fallback") == "fallback"
    assert file_licence(tmp_path, "pkg", "src/activities/fish/resource/images/fish2.jpg", "fallback").startswith("public-domain")
