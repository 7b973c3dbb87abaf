"""Hostile files for tests: valid PNGs of any declared size, cards and archives carrying given text."""

from __future__ import annotations

import base64
import io
import json
import struct
import zipfile
import zlib
from typing import Any

from kataribe.formats.png import PNG_SIGNATURE, PngChunk


def png(width: int, height: int, *, padding: int = 0, text: dict[str, str] | None = None) -> bytes:
    """A well-formed PNG (chunks and CRCs right) declaring ``width`` x ``height`` pixels. The image
    data is one tiny row whatever the size: only a decoder would notice, and that is the point.
    ``padding`` bytes of noise go into a private chunk, to make a big file with a small picture."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    chunks = [PngChunk(b"IHDR", ihdr)]
    for keyword, value in (text or {}).items():
        chunks.append(PngChunk(b"tEXt", keyword.encode("latin-1") + b"\x00" + value.encode("latin-1")))
    if padding:
        noise = bytearray()
        seed = 1
        while len(noise) < padding:  # incompressible and reproducible, fast enough for MiBs
            seed = zlib.crc32(seed.to_bytes(4, "little"))
            noise += seed.to_bytes(4, "little") * 64
        chunks.append(PngChunk(b"prVt", bytes(noise[:padding])))
    chunks.append(PngChunk(b"IDAT", zlib.compress(b"\x00" + b"\x00\x00\x00\xff" * min(width, 64))))
    chunks.append(PngChunk(b"IEND", b""))
    return PNG_SIGNATURE + b"".join(chunk.to_bytes() for chunk in chunks)


def card_json(**fields: Any) -> bytes:
    """A V2 card as JSON text, written with ASCII escapes so that a str field of ``"\\ud800"`` goes
    into the file as the six characters ``\\ud800`` (what a hostile card file holds)."""
    data = {"name": "Hostile", "description": "", "first_mes": "Hello.", **fields}
    return json.dumps({"spec": "chara_card_v2", "spec_version": "2.0", "data": data}).encode("ascii")


def card_png(card: bytes, width: int = 64, height: int = 64) -> bytes:
    """A SillyTavern PNG card: the JSON, base64 in a ``chara`` text chunk."""
    return png(width, height, text={"chara": base64.b64encode(card).decode("ascii")})


def charx(card: dict[str, Any], members: dict[str, bytes]) -> bytes:
    """A CHARX archive: ``card.json`` and the given members, deflated."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("card.json", json.dumps(card))
        for name, data in members.items():
            archive.writestr(name, data)
    return out.getvalue()
