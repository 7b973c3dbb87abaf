"""CHARX containers and V3 asset addressing: bounded path-safe zips, asset URIs, member layout."""

from __future__ import annotations

import base64
import binascii
import copy
import io
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_to_bytes

from kataribe.errors import InvalidRequest
from kataribe.formats.safezip import SafeZip, ZipLimits, unsafe_member_name_reason

MIB = 1024 * 1024
MAX_CHARX_BYTES = 256 * MIB
MAX_TOTAL_UNCOMPRESSED = 256 * MIB
MAX_MEMBERS = 1000
MAX_COMPRESSION_RATIO = 100
RATIO_CHECK_MIN_BYTES = 1 * MIB
"""Small members may compress past the ratio legitimately (a page of spaces); they are bounded anyway."""

CARD_MEMBER = "card.json"
EMBEDDED_URI_PREFIXES = ("embeded://", "embedded://")  # the spec's spelling first; both are in the wild

_IMAGE_EXTS = ("png", "jpg", "jpeg", "webp", "gif", "avif", "bmp", "svg")
_AUDIO_EXTS = ("mp3", "wav", "ogg", "opus", "m4a", "flac")
_VIDEO_EXTS = ("mp4", "webm", "mkv", "mov", "avi")
_FONT_EXTS = ("otf", "ttf", "woff", "woff2")
_KIND_BY_EXT = {
    **dict.fromkeys(_IMAGE_EXTS, "images"),
    **dict.fromkeys(_AUDIO_EXTS, "audio"),
    **dict.fromkeys(_VIDEO_EXTS, "video"),
    **dict.fromkeys(("mmd", "pmx", "obj", "glb", "gltf", "vrm"), "3d"),
    **dict.fromkeys(("safetensors", "ckpt", "onnx", "pth"), "ai"),
    **dict.fromkeys(_FONT_EXTS, "fonts"),
    **dict.fromkeys(("lua", "js", "ts", "py"), "code"),
}
_ALREADY_COMPRESSED = frozenset(
    {*_IMAGE_EXTS, *_AUDIO_EXTS, *_VIDEO_EXTS, *_FONT_EXTS, "zip", "risum", "charx"}
)
_ALREADY_COMPRESSED -= {"bmp", "svg", "wav", "otf", "ttf"}


class CharxFormatError(InvalidRequest):
    """A CHARX archive, or an asset a card points at, is unusable."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="bad_charx")


def is_zip(data: bytes) -> bool:
    return data.startswith((b"PK\x03\x04", b"PK\x05\x06"))


CHARX_LIMITS = ZipLimits(
    max_bytes=MAX_CHARX_BYTES,
    max_members=MAX_MEMBERS,
    max_total=MAX_TOTAL_UNCOMPRESSED,
    max_ratio=MAX_COMPRESSION_RATIO,
    ratio_min_bytes=RATIO_CHECK_MIN_BYTES,
)


class CharxReader(SafeZip):
    """A checked view of a CHARX archive: every limit is enforced before any member is inflated."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data, CHARX_LIMITS, what="CHARX", error=CharxFormatError)


def _safe_segment(text: str, limit: int) -> str:
    cleaned = "".join(c if c.isalnum() or c in "-_ ." else "_" for c in text).strip(" .")
    return cleaned[:limit].strip(" .")


def asset_member_path(asset_type: str, name: str, ext: str, taken: set[str]) -> str:
    """Where the V3 spec puts an asset (``assets/{type}/images/name.png``), unique within ``taken``."""
    safe_ext = _safe_segment(ext.lower(), 16) or "bin"
    kind = _KIND_BY_EXT.get(safe_ext, "other")
    folder = f"assets/{_safe_segment(asset_type, 64) or 'other'}/{kind}"
    stem = _safe_segment(name, 100) or "asset"
    path, suffix = f"{folder}/{stem}.{safe_ext}", 0
    while path in taken:
        suffix += 1
        path = f"{folder}/{stem}_{suffix}.{safe_ext}"
    taken.add(path)
    return path


def _compression_for(name: str, data: bytes) -> int:
    ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if ext in _ALREADY_COMPRESSED:
        return zipfile.ZIP_STORED
    # Our own reader refuses big members past the ratio limit; store those instead of deflating.
    if len(data) > RATIO_CHECK_MIN_BYTES and len(data) > MAX_COMPRESSION_RATIO * len(zlib.compress(data, 6)):
        return zipfile.ZIP_STORED
    return zipfile.ZIP_DEFLATED


def write_charx(members: Sequence[tuple[str, bytes]]) -> bytes:
    """A zip with fixed timestamps, so the same members always give the same bytes."""
    buffer = io.BytesIO()
    seen: set[str] = set()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members:
            reason = unsafe_member_name_reason(name)
            if reason is not None or name in seen:
                raise CharxFormatError(
                    f"Cannot write CHARX member {name!r}: it {reason or 'is a duplicate'}."
                )
            seen.add(name)
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = _compression_for(name, data)
            archive.writestr(info, data)
    return buffer.getvalue()


# ---------------------------------------------------------------- asset addressing


@dataclass(frozen=True, slots=True)
class CardAsset:
    type: str
    name: str
    ext: str
    uri: str
    data: bytes | None
    """None where the bytes live elsewhere (an https: URI, a member the archive lacks)."""


def decode_base64(text: str) -> bytes | None:
    """Base64 as forgiving as Node's Buffer about whitespace and padding, not about junk; None if invalid."""
    compact = "".join(text.split())
    compact += "=" * (-len(compact) % 4)
    for altchars in (None, b"-_"):
        try:
            return base64.b64decode(compact, altchars=altchars, validate=True)
        except (binascii.Error, ValueError):
            continue
    return None


def sniff_image_ext(data: bytes) -> str:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    return "unknown"


def embedded_path(uri: str) -> str | None:
    for prefix in EMBEDDED_URI_PREFIXES:
        if uri.startswith(prefix):
            return uri[len(prefix) :]
    return None


def _safe_embedded_path(uri: str) -> str | None:
    path = embedded_path(uri)
    if path is None or unsafe_member_name_reason(path) or path == CARD_MEMBER:
        return None
    return path


def _normal_uri(uri: str) -> str:
    path = embedded_path(uri)
    return uri if path is None else EMBEDDED_URI_PREFIXES[0] + path


def _data_uri(uri: str, where: str) -> bytes:
    header, comma, payload = uri[5:].partition(",")
    if not comma:
        raise CharxFormatError(f"{where} is a data: URI without a comma; the asset is damaged.")
    if not header.lower().endswith(";base64"):
        return unquote_to_bytes(payload)
    data = decode_base64(payload)
    if data is None:
        raise CharxFormatError(f"{where} is a data: URI with invalid base64; the asset is damaged.")
    return data


@dataclass(frozen=True)
class AssetSources:
    """Where a card's asset URIs can point: the card's own image, PNG asset chunks, archive members."""

    default_icon: bytes | None = None
    png_chunks: dict[str, str] | None = None
    archive: CharxReader | None = None

    def resolve(self, uri: str, asset_type: str, where: str) -> bytes | None:
        path = embedded_path(uri)
        if path is not None:
            archive = self.archive
            return archive.read(path) if archive is not None and path in archive.names else None
        if uri.startswith("__asset:"):  # RisuAI's PNG chunks ``chara-ext-asset_:{key}``
            text = (self.png_chunks or {}).get(uri[len("__asset:") :])
            data = None if text is None else decode_base64(text)
            if text is not None and data is None:
                raise CharxFormatError(f"{where}: the PNG chunk for {uri[:60]} is not valid base64.")
            return data
        if uri == "ccdefault:":
            return self.default_icon if asset_type == "icon" else None
        if uri[:5].lower() == "data:":
            return _data_uri(uri, where)
        return None


def _risu_asset_refs(extensions: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(type, name, ext, uri) from RisuAI's V2 ``extensions.risuai`` emotions and additionalAssets."""
    risu = extensions.get("risuai")
    if not isinstance(risu, dict):
        return []
    refs: list[tuple[str, str, str, str]] = []
    for key, asset_type in (("emotions", "emotion"), ("additionalAssets", "x-risu-asset")):
        entries = risu.get(key)
        for entry in entries if isinstance(entries, list) else []:
            if isinstance(entry, list) and len(entry) >= 2 and all(isinstance(x, str) for x in entry[:3]):
                refs.append((asset_type, entry[0], entry[2] if len(entry) >= 3 else "", entry[1]))
    return refs


def collect_assets(
    descriptors: list[dict[str, Any]] | None, extensions: dict[str, Any], sources: AssetSources
) -> list[CardAsset]:
    """V3 ``data.assets`` entries with their bytes, then RisuAI V2 emotions the descriptors lack."""
    assets: list[CardAsset] = []
    for i, desc in enumerate(descriptors or []):
        uri, asset_type = desc["uri"], desc["type"]
        data = sources.resolve(uri, asset_type, f"data.assets[{i}]")
        assets.append(CardAsset(asset_type, desc.get("name", ""), desc.get("ext", ""), uri, data))
    described = {(asset.type, asset.name) for asset in assets}
    for asset_type, name, ext, uri in _risu_asset_refs(extensions):
        if (asset_type, name) not in described:
            data = sources.resolve(uri, asset_type, f"extensions.risuai asset {name[:60]!r}")
            ext = ext or (sniff_image_ext(data) if data is not None else "unknown")
            assets.append(CardAsset(asset_type, name, ext, uri, data))
    return assets


def main_icon(assets: Sequence[CardAsset]) -> bytes | None:
    icons = [asset for asset in assets if asset.type == "icon" and asset.data is not None]
    main = [asset for asset in icons if asset.name == "main"]
    return (main or icons)[0].data if icons else None


@dataclass(frozen=True)
class PackedAssets:
    descriptors: list[dict[str, Any]] | None
    members: dict[str, bytes]
    moved_uris: frozenset[str]
    """URIs of assets that had no descriptor (RisuAI V2 emotions) and got one."""


def pack_assets(
    descriptors: list[dict[str, Any]] | None, assets: Sequence[CardAsset], avatar: bytes | None
) -> PackedAssets:
    """Give every asset with bytes an ``embeded://`` member and point its descriptor there.

    Assets known by another URI (``__asset:``, ``data:``, ``ccdefault:``) move into members, as RisuAI
    converts them; ``avatar`` becomes the main icon. Members already in place keep their paths.
    """
    by_key: dict[tuple[str, str], CardAsset] = {}
    for asset in assets:
        if asset.data is not None:
            by_key.setdefault((asset.type, _normal_uri(asset.uri)), asset)
    descs = copy.deepcopy(descriptors) if descriptors is not None else []
    members: dict[str, bytes] = {}
    taken = {path for d in descs if (path := _safe_embedded_path(str(d.get("uri"))))}
    placed: dict[tuple[str, str], str] = {}

    def place(key: tuple[str, str], name: str, ext: str, data: bytes) -> str:
        path = _safe_embedded_path(key[1])
        if path is None:
            path = placed.get(key) or asset_member_path(key[0], name, ext, taken)
        placed[key] = path
        members[path] = data
        return EMBEDDED_URI_PREFIXES[0] + path

    icons = [d for d in descs if d.get("type") == "icon"]
    main = next((d for d in icons if d.get("name") == "main"), icons[0] if icons else None)
    if avatar is not None and main is None:
        main = {"type": "icon", "uri": "ccdefault:", "name": "main", "ext": sniff_image_ext(avatar)}
        descs.append(main)
    described = {(str(d.get("type")), _normal_uri(str(d.get("uri")))) for d in descs}
    for desc in descs:
        key = (str(desc.get("type")), _normal_uri(str(desc.get("uri"))))
        source = by_key.get(key)
        data = avatar if desc is main and avatar is not None else source.data if source else None
        if data is None:
            continue
        ext = str(desc.get("ext", ""))
        if _safe_embedded_path(key[1]) is None and sniff_image_ext(data) != "unknown":
            ext = sniff_image_ext(data)  # the URI changes anyway; make ext match the bytes
        new_uri = place(key, str(desc.get("name", "")), ext, data)
        if new_uri != key[1]:
            desc.update(uri=new_uri, ext=ext)
    moved: set[str] = set()
    for key, asset in by_key.items():
        if key not in described and asset.data is not None:
            new_uri = place(key, asset.name, asset.ext, asset.data)
            descs.append({"type": asset.type, "uri": new_uri, "name": asset.name, "ext": asset.ext})
            moved.add(asset.uri)
    packed = descs if descs or descriptors is not None else None
    return PackedAssets(packed, members, frozenset(moved))


def drop_risu_refs(extensions: dict[str, Any], moved: frozenset[str]) -> dict[str, Any]:
    """``extensions`` without RisuAI emotion entries whose assets now have V3 descriptors."""
    risu = extensions.get("risuai")
    if not moved or not isinstance(risu, dict):
        return extensions
    risu = dict(risu)
    for key in ("emotions", "additionalAssets"):
        entries = risu.get(key)
        if isinstance(entries, list):
            kept = [e for e in entries if not (isinstance(e, list) and len(e) >= 2 and e[1] in moved)]
            if kept:
                risu[key] = kept
            else:
                del risu[key]
    return {**extensions, "risuai": risu}
