"""Cheap checks that an image file is whole, before it is decoded: a damaged file must be flagged, never scored.

OpenCV decodes a JPEG cut short (a copy interrupted, a card pulled out) as a picture whose missing part is grey,
with no error; a ranking tool must not rank it. A JPEG ends with its end-of-image marker (``FF D9``) after its
last scan, a PNG with its ``IEND`` chunk, a WebP's RIFF header gives its length: each is checked on the bytes
already read for decoding, at the cost of a search from the end of the file.
"""

from __future__ import annotations

JPEG_START = b"\xff\xd8"
JPEG_END = b"\xff\xd9"
JPEG_SCAN = 0xDA  # start-of-scan marker: entropy-coded data follows, in which FF D9 cannot occur before the end
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"  # the IEND chunk: length 0, type, CRC
HEIF_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1", b"avif", b"avis"})


def sniff(data: bytes) -> str:
    """The format of an image file's bytes by their signature: jpeg, png, webp, heif (HEIC, HEIF, AVIF) or other."""
    if data.startswith(JPEG_START):
        return "jpeg"
    if data.startswith(PNG_SIGNATURE):
        return "png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[4:8] == b"ftyp" and data[8:12] in HEIF_BRANDS:
        return "heif"
    return "other"


def _jpeg_scan_offset(data: bytes) -> int | None:
    """Where a JPEG's first scan starts (after the headers, past any EXIF thumbnail); None if the headers end first."""
    position = 2
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            return None
        marker = data[position + 1]
        if marker == 0xFF:  # a fill byte
            position += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
            position += 2
            continue
        if marker == JPEG_SCAN:
            return position
        position += 2 + int.from_bytes(data[position + 2:position + 4], "big")
    return None


def damage(data: bytes, kind: str) -> str | None:
    """Why an image file of format ``kind`` (:func:`sniff`) is not whole, or None when it looks whole."""
    if kind == "jpeg":
        if data.endswith(JPEG_END) or data.rstrip(b"\x00").endswith(JPEG_END):  # the usual case: the marker ends the file
            return None
        scan = _jpeg_scan_offset(data)
        # data appended after the image (a phone's motion photo) leaves the marker inside the file
        if scan is None or data.find(JPEG_END, scan) < 0:
            return "truncated JPEG (no end-of-image marker)"
    elif kind == "png":
        if not data.endswith(PNG_END) and data.rfind(PNG_END) < 0:
            return "truncated PNG (no IEND chunk)"
    elif kind == "webp":
        if len(data) < 8 + int.from_bytes(data[4:8], "little"):
            return "truncated WebP (shorter than its header says)"
    return None
