"""Files inside a compiled Qt resource bundle (``.rcc``, as ``rcc -binary`` writes it).

Some registry packages (e.g. Debian's ``gcompris-qt-data``) ship their photographs only inside
such bundles. The format: a ``qres`` header (version, then the offsets of the node tree, the file
data and the names), a tree of 14-byte (version 1) or 22-byte (version 2 and later) nodes, names as
UTF-16BE with a length and a hash, and each file's data behind its length; data is stored as is,
zlib-compressed with Qt's 4-byte size prefix (flag 1), or zstd-compressed (flag 4).
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Iterator

from memgaze.errors import fail

MAGIC = b"qres"
COMPRESSED, DIRECTORY, COMPRESSED_ZSTD = 1, 2, 4


def rcc_files(path: Path) -> Iterator[tuple[str, bytes]]:
    """Every file of the bundle at ``path`` as (its resource path without the leading ``/``, its bytes)."""
    blob = path.read_bytes()
    if blob[:4] != MAGIC or len(blob) < 20:
        fail(f"{path} is not a compiled Qt resource file (no 'qres' header)")
    version, tree, data, names = struct.unpack(">IIII", blob[4:20])
    node_size = 14 if version == 1 else 22

    def name(offset: int) -> str:
        (length,) = struct.unpack(">H", blob[names + offset : names + offset + 2])
        start = names + offset + 6  # the length, then a 4-byte hash
        return blob[start : start + 2 * length].decode("utf-16-be")

    def walk(index: int, prefix: str) -> Iterator[tuple[str, bytes]]:
        node = tree + index * node_size
        name_offset, flags = struct.unpack(">IH", blob[node : node + 6])
        here = prefix + name(name_offset) if index else ""
        if flags & DIRECTORY:
            count, first = struct.unpack(">II", blob[node + 6 : node + 14])
            for child in range(first, first + count):
                yield from walk(child, here + "/" if here else "")
            return
        (offset,) = struct.unpack(">I", blob[node + 10 : node + 14])
        (size,) = struct.unpack(">I", blob[data + offset : data + offset + 4])
        payload = blob[data + offset + 4 : data + offset + 4 + size]
        yield here, _decompress(payload, flags, path, here)

    yield from walk(0, "")


def _decompress(payload: bytes, flags: int, path: Path, member: str) -> bytes:
    if flags & COMPRESSED:
        return zlib.decompress(payload[4:])  # qCompress: big-endian uncompressed size, then zlib
    if flags & COMPRESSED_ZSTD:
        fail(f"{path}: {member} is zstd-compressed, which this reader does not decode")
    return payload
