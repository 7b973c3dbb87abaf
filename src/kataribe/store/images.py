"""An image's size read from its header alone (PNG, GIF, WebP, JPEG): absurd ones are refused unseen."""

from __future__ import annotations

import struct

from kataribe.store.errors import InvalidValue

MAX_IMAGE_SIDE = 16_384
"""Browsers refuse or crawl past this many pixels on a side (Chromium's canvas limit)."""
MAX_IMAGE_PIXELS = 64 * 1024 * 1024
"""8192 x 8192: decoded that is 256 MiB of RGBA, already more than any avatar or sprite needs."""
_JPEG_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
_JPEG_SCAN_BYTES = 1024 * 1024


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) as the header declares them, or None for a file that is not a known image
    or whose header is too short to say."""
    try:
        if data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR":
            width, height = struct.unpack_from(">II", data, 16)
            return width, height
        if data.startswith((b"GIF87a", b"GIF89a")):
            width, height = struct.unpack_from("<HH", data, 6)
            return width, height
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            return _webp_size(data)
        if data.startswith(b"\xff\xd8"):
            return _jpeg_size(data)
    except struct.error:
        return None
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8X":
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return width, height
    if chunk == b"VP8L":
        (bits,) = struct.unpack_from("<I", data, 21)
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8 ":
        width, height = struct.unpack_from("<HH", data, 26)
        return width & 0x3FFF, height & 0x3FFF
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    pos = 2
    end = min(len(data), _JPEG_SCAN_BYTES)
    while pos + 4 <= end:
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        (length,) = struct.unpack_from(">H", data, pos + 2)
        if marker in _JPEG_SOF:
            height, width = struct.unpack_from(">HH", data, pos + 5)
            return width, height
        if marker == 0xDA:  # start of scan before any frame header: not a usable JPEG
            return None
        pos += 2 + length
    return None


def check_image_size(data: bytes) -> None:
    """Refuse an image whose header declares more pixels than a browser should ever decode."""
    size = image_size(data)
    if size is None:
        return
    width, height = size
    if width > MAX_IMAGE_SIDE or height > MAX_IMAGE_SIDE or width * height > MAX_IMAGE_PIXELS:
        raise InvalidValue(
            "file",
            f"The image declares {width:,} x {height:,} pixels; the limit is {MAX_IMAGE_SIDE:,} on a side "
            f"and {MAX_IMAGE_PIXELS // (1024 * 1024)} megapixels in all. Resize it and upload it again.",
        )
