"""PNG chunk walking: read and replace text chunks without decoding the image (APNG-safe)."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from kataribe.errors import InvalidRequest

_MIB = 1024 * 1024
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_PNG_BYTES = 64 * _MIB
MAX_TEXT_CHUNK_BYTES = 32 * _MIB
"""Applies to a text chunk as stored and, for zTXt/iTXt, to its decompressed text."""

_MAX_CHUNK_LENGTH = 2**31 - 1  # the PNG specification's own limit
_TEXT_TYPES = frozenset({b"tEXt", b"zTXt", b"iTXt"})


class PngFormatError(InvalidRequest):
    def __init__(self, message: str) -> None:
        super().__init__(message, code="bad_png")


@dataclass(frozen=True, slots=True)
class PngChunk:
    type: bytes
    data: bytes

    def to_bytes(self) -> bytes:
        crc = zlib.crc32(self.data, zlib.crc32(self.type))
        return struct.pack(">I", len(self.data)) + self.type + self.data + struct.pack(">I", crc)


@dataclass(frozen=True, slots=True)
class PngText:
    keyword: str
    text: str


def is_png(data: bytes) -> bool:
    return data.startswith(PNG_SIGNATURE)


def read_chunks(data: bytes) -> list[PngChunk]:
    """Every chunk up to IEND, with lengths and CRCs checked; image data is never decompressed."""
    if len(data) > MAX_PNG_BYTES:
        raise PngFormatError(
            f"The PNG is {len(data) // _MIB} MiB; the limit is {MAX_PNG_BYTES // _MIB} MiB. "
            "Shrink the image and export the card again."
        )
    if not is_png(data):
        raise PngFormatError("The file does not start with the PNG signature; it is not a PNG image.")
    chunks: list[PngChunk] = []
    pos = len(PNG_SIGNATURE)
    while True:
        if pos + 8 > len(data):
            raise PngFormatError("The PNG ends before its IEND chunk; the file is truncated.")
        length, ctype = struct.unpack_from(">I4s", data, pos)
        if not ctype.isalpha():
            raise PngFormatError(
                f"The PNG has a chunk with an invalid type {ctype!r} at byte {pos}; it is damaged."
            )
        if ctype in _TEXT_TYPES and length > MAX_TEXT_CHUNK_BYTES:
            raise PngFormatError(
                f"The PNG text chunk at byte {pos} is {length // _MIB} MiB; "
                f"the limit is {MAX_TEXT_CHUNK_BYTES // _MIB} MiB."
            )
        if length > _MAX_CHUNK_LENGTH or pos + 12 + length > len(data):
            raise PngFormatError(
                f"The PNG chunk {ctype.decode('ascii')} at byte {pos} runs past the end of the file; "
                "the file is truncated or damaged."
            )
        body = data[pos + 8 : pos + 8 + length]
        (stored_crc,) = struct.unpack_from(">I", data, pos + 8 + length)
        if zlib.crc32(body, zlib.crc32(ctype)) != stored_crc:
            raise PngFormatError(
                f"The PNG chunk {ctype.decode('ascii')} at byte {pos} fails its CRC check; "
                "the file is damaged."
            )
        chunks.append(PngChunk(ctype, body))
        pos += 12 + length
        if ctype == b"IEND":
            break
    if chunks[0].type != b"IHDR":
        raise PngFormatError("The PNG does not start with an IHDR chunk; the file is damaged.")
    return chunks


def _inflate_text(compressed: bytes) -> bytes | None:
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(compressed, MAX_TEXT_CHUNK_BYTES + 1)
    except zlib.error:
        return None
    if len(out) > MAX_TEXT_CHUNK_BYTES:
        raise PngFormatError(
            f"A compressed PNG text chunk expands past {MAX_TEXT_CHUNK_BYTES // _MIB} MiB; refused."
        )
    return out if inflater.eof else None


def decode_text_chunk(chunk: PngChunk) -> PngText | None:
    """The keyword and text of a tEXt, zTXt or iTXt chunk; None for other or malformed chunks."""
    if chunk.type not in _TEXT_TYPES or b"\0" not in chunk.data:
        return None
    raw_keyword, rest = chunk.data.split(b"\0", 1)
    keyword = raw_keyword.decode("latin-1")
    if chunk.type == b"tEXt":
        return PngText(keyword, rest.decode("latin-1"))
    if chunk.type == b"zTXt":
        if rest[:1] != b"\0":
            return None
        inflated = _inflate_text(rest[1:])
        return None if inflated is None else PngText(keyword, inflated.decode("latin-1"))
    # iTXt: compression flag, method, language tag, translated keyword, then UTF-8 text
    if len(rest) < 2 or rest[2:].count(b"\0") < 2:
        return None
    compressed, method = rest[0], rest[1]
    text = rest[2:].split(b"\0", 2)[2]
    if compressed:
        if method != 0:
            return None
        inflated = _inflate_text(text)
        if inflated is None:
            return None
        text = inflated
    try:
        return PngText(keyword, text.decode("utf-8"))
    except UnicodeDecodeError:
        return None


def read_text_chunks(data: bytes) -> list[PngText]:
    """Text chunks in file order; malformed ones are skipped so a stray chunk cannot block an import."""
    return [text for chunk in read_chunks(data) if (text := decode_text_chunk(chunk)) is not None]


def encode_text_chunk(keyword: str, text: str) -> PngChunk:
    try:
        raw_keyword, raw_text = keyword.encode("latin-1"), text.encode("latin-1")
    except UnicodeEncodeError:
        raise PngFormatError(f"The PNG text chunk {keyword!r} must be Latin-1 text.") from None
    if not 1 <= len(raw_keyword) <= 79 or b"\0" in raw_keyword or b"\0" in raw_text:
        raise PngFormatError(f"{keyword!r} cannot be a PNG text keyword (1-79 Latin-1 characters, no NUL).")
    if len(raw_keyword) + 1 + len(raw_text) > MAX_TEXT_CHUNK_BYTES:
        raise PngFormatError(
            f"The PNG text chunk {keyword!r} would be over {MAX_TEXT_CHUNK_BYTES // _MIB} MiB; "
            "make the card or its assets smaller."
        )
    return PngChunk(b"tEXt", raw_keyword + b"\0" + raw_text)


def rewrite_text_chunks(
    data: bytes,
    *,
    drop: Callable[[str], bool],
    add: Sequence[tuple[str, str]] = (),
) -> bytes:
    """Drop text chunks whose keyword ``drop`` accepts and insert ``add`` as tEXt before IEND.

    Every other chunk (IDAT, APNG's acTL/fcTL/fdAT, ...) is copied byte for byte, in order.
    """
    chunks = read_chunks(data)
    new_chunks = [encode_text_chunk(keyword, text) for keyword, text in add]
    kept: list[PngChunk] = []
    for chunk in chunks[:-1]:
        text = decode_text_chunk(chunk) if chunk.type in _TEXT_TYPES else None
        if text is None or not drop(text.keyword):
            kept.append(chunk)
    out = b"".join(chunk.to_bytes() for chunk in [*kept, *new_chunks, chunks[-1]])
    if len(PNG_SIGNATURE) + len(out) > MAX_PNG_BYTES:
        raise PngFormatError(
            f"The PNG would be over {MAX_PNG_BYTES // _MIB} MiB; make the card or its assets smaller."
        )
    return PNG_SIGNATURE + out


def placeholder_png(size: int = 64, grey: int = 0x80) -> bytes:
    """A valid square greyscale PNG, for cards exported without an image."""
    if not 1 <= size <= 4096 or not 0 <= grey <= 255:
        raise ValueError("size must be 1..4096 and grey 0..255")
    ihdr = struct.pack(">IIBBBBB", size, size, 8, 0, 0, 0, 0)  # 8-bit greyscale, no interlace
    rows = (b"\0" + bytes([grey]) * size) * size  # filter byte 0 (None) before each row
    chunks = [PngChunk(b"IHDR", ihdr), PngChunk(b"IDAT", zlib.compress(rows, 9)), PngChunk(b"IEND", b"")]
    return PNG_SIGNATURE + b"".join(chunk.to_bytes() for chunk in chunks)
