"""Image sizes read from headers alone, for every format the asset store sniffs."""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path

import pytest

from kataribe.store.errors import InvalidValue
from kataribe.store.images import check_image_size, image_size
from tests.hostile import png


def gif(width: int, height: int) -> bytes:
    return b"GIF89a" + struct.pack("<HH", width, height) + b"\x00" * 8


def webp_vp8x(width: int, height: int) -> bytes:
    body = b"\x00" * 4 + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    return (
        b"RIFF"
        + struct.pack("<I", 4 + 8 + len(body))
        + b"WEBP"
        + b"VP8X"
        + struct.pack("<I", len(body))
        + body
    )


def jpeg(width: int, height: int) -> bytes:
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00" + b"\x00" * 9
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    return b"\xff\xd8" + app0 + sof + b"\xff\xd9"


@pytest.mark.parametrize("make", [png, gif, webp_vp8x, jpeg])
def test_each_format_says_its_size_and_absurd_ones_are_refused(make: Callable[[int, int], bytes]) -> None:
    assert image_size(make(640, 480)) == (640, 480)
    check_image_size(make(4096, 4096))
    with pytest.raises(InvalidValue, match="60,000 x 60,000 pixels"):
        check_image_size(make(60_000, 60_000))


def test_real_sprites_pass_and_other_bytes_have_no_size(fixtures_dir: Path) -> None:
    for sprite in sorted((fixtures_dir / "sillytavern" / "Seraphina-sprites").iterdir())[:5]:
        data = sprite.read_bytes()
        size = image_size(data)
        assert size is not None and 0 < size[0] <= 4096, sprite.name
        check_image_size(data)
    for other in (b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"PK\x03\x04 not an image", b"RIFF"):
        assert image_size(other) is None
