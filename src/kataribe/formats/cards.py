"""Character cards (TavernAI V1, Character Card V2/V3) from PNG, JSON and CHARX files, and back."""

from __future__ import annotations

import base64
import copy
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from kataribe.errors import InvalidRequest
from kataribe.formats import charx, png
from kataribe.formats.charx import CardAsset as CardAsset  # part of this module's API

CardSpec = Literal["v1", "v2", "v3"]
SourceFormat = Literal["png", "json", "charx"]

MAX_JSON_BYTES = 64 * 1024 * 1024
MAX_NESTING = 64
PNG_ASSET_PREFIX = "chara-ext-asset_:"
"""RisuAI stores extra assets in PNG text chunks with this keyword prefix, addressed as ``__asset:{key}``."""

V1_FIELDS = ("name", "description", "personality", "scenario", "first_mes", "mes_example")
V2_FIELDS = (
    *V1_FIELDS,
    "creator_notes",
    "system_prompt",
    "post_history_instructions",
    "alternate_greetings",
    "tags",
    "creator",
    "character_version",
    "extensions",
)
V3_FIELDS = (*V2_FIELDS, "group_only_greetings")
OPTIONAL_FIELDS = (
    "character_book",
    "assets",
    "nickname",
    "creator_notes_multilingual",
    "source",
    "creation_date",
    "modification_date",
)
_LIST_FIELDS = frozenset({"alternate_greetings", "group_only_greetings", "tags"})
# Pygmalion/Gradio-era flat cards, as SillyTavern reads them.
_V1_ALIASES = {
    "char_name": "name",
    "char_persona": "description",
    "world_scenario": "scenario",
    "char_greeting": "first_mes",
    "example_dialogue": "mes_example",
}
# SillyTavern repeats these at the top of a V2 card for V1 readers; `data` is the truth.
_MIRRORS = frozenset({*V1_FIELDS, "creatorcomment", "tags"})
_EXTENSION_MIRRORS = ("talkativeness", "fav")


class CardFormatError(InvalidRequest):
    def __init__(self, message: str) -> None:
        super().__init__(message, param="file", code="bad_card")


@dataclass(kw_only=True)
class CharacterCard:
    """Every Character Card V3 field, plus what a lossless round trip needs.

    ``None`` means an optional V3 field is absent. ``extra_data`` and ``extra_top_level`` keep keys
    this module does not know. ``missing_fields`` remembers required fields the source lacked, so an
    export leaves them out while they still hold their empty default; it is bookkeeping about the
    source's shape, not content, and takes no part in equality.
    """

    name: str = ""
    description: str = ""
    personality: str = ""
    scenario: str = ""
    first_mes: str = ""
    mes_example: str = ""
    creator_notes: str = ""
    system_prompt: str = ""
    post_history_instructions: str = ""
    alternate_greetings: list[str] = field(default_factory=list)
    group_only_greetings: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    creator: str = ""
    character_version: str = ""
    nickname: str | None = None
    creator_notes_multilingual: dict[str, str] | None = None
    source: list[str] | None = None
    creation_date: float | None = None
    modification_date: float | None = None
    character_book: dict[str, Any] | None = None
    assets: list[dict[str, Any]] | None = None
    extensions: dict[str, Any] = field(default_factory=dict)
    extra_data: dict[str, Any] = field(default_factory=dict)
    extra_top_level: dict[str, Any] = field(default_factory=dict)
    missing_fields: frozenset[str] = field(default=frozenset(), compare=False, repr=False)


@dataclass(frozen=True)
class ImportedCard:
    card: CharacterCard
    avatar: bytes | None
    assets: list[CardAsset]
    source_format: SourceFormat
    spec: CardSpec


# ---------------------------------------------------------------- field checks


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise CardFormatError(f"{where} must be a string, not {_kind(value)}.")
    return value


def _texts(value: Any, where: str) -> list[str]:
    if not isinstance(value, list):
        raise CardFormatError(f"{where} must be a list of strings, not {_kind(value)}.")
    return [_text(item, f"{where}[{i}]") for i, item in enumerate(value)]


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise CardFormatError(f"{where} must be a JSON object, not {_kind(value)}.")
    return value


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CardFormatError(f"{where} must be a number (Unix seconds), not {_kind(value)}.")
    return value


def _text_map(value: Any, where: str) -> dict[str, str]:
    return {key: _text(item, f"{where}.{key}") for key, item in _object(value, where).items()}


def _asset_list(value: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise CardFormatError(f"{where} must be a list of asset objects, not {_kind(value)}.")
    for i, item in enumerate(value):
        asset = _object(item, f"{where}[{i}]")
        for key in ("type", "uri"):
            _text(asset.get(key), f"{where}[{i}].{key}")
        for key in ("name", "ext"):
            if key in asset:
                _text(asset[key], f"{where}[{i}].{key}")
    return value


_CHECKS: dict[str, Callable[[Any, str], Any]] = {
    **dict.fromkeys(V3_FIELDS, _text),
    **dict.fromkeys(_LIST_FIELDS, _texts),
    "extensions": _object,
    "character_book": _object,
    "assets": _asset_list,
    "nickname": _text,
    "creator_notes_multilingual": _text_map,
    "source": _texts,
    "creation_date": _number,
    "modification_date": _number,
}


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")


def _empty(name: str) -> Any:
    return {} if name == "extensions" else [] if name in _LIST_FIELDS else ""


# ---------------------------------------------------------------- JSON and base64


def _reject_constant(name: str) -> Any:
    raise CardFormatError(f"The card JSON contains {name}, which is not a JSON number.")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise CardFormatError(f"The card JSON contains the number {text[:40]}, which is too large.")
    return value


def _clean(value: Any, depth: int, where: str) -> Any:
    """Bound nesting and refuse lone surrogates (JSON allows them, UTF-8 and databases cannot carry
    them): the message names the field, e.g. ``data.alternate_greetings[1]``."""
    if depth > MAX_NESTING:
        raise CardFormatError(f"The card JSON is nested deeper than {MAX_NESTING} levels; refused.")
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise CardFormatError(
                f"The card's '{where or 'value'}' contains an unpaired surrogate (broken UTF-16 text "
                "such as \\ud800); fix that text in the card and import it again."
            ) from None
        return value
    if isinstance(value, list):
        return [_clean(item, depth + 1, f"{where}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, dict):
        cleaned: dict[str, Any] = {}
        for key, item in value.items():
            inner = f"{where}.{key}" if where else str(key)
            cleaned[_clean(key, depth, inner.encode("utf-8", "backslashreplace").decode())] = _clean(
                item, depth + 1, inner
            )
        return cleaned
    return value


def _parse_json(raw: bytes, where: str) -> Any:
    if len(raw) > MAX_JSON_BYTES:
        raise CardFormatError(f"{where} is {len(raw) // (1024 * 1024)} MiB of JSON; the limit is 64 MiB.")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CardFormatError(f"{where} is not UTF-8 text (invalid byte at offset {exc.start}).") from None
    try:
        value = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except json.JSONDecodeError as exc:
        raise CardFormatError(
            f"{where} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}."
        ) from None
    except (ValueError, RecursionError) as exc:
        raise CardFormatError(f"{where} is not usable JSON ({type(exc).__name__}: {exc}).") from None
    return _clean(value, 0, "")


def _dump(value: Any, *, indent: int | None = None) -> bytes:
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False, indent=indent)
        return text.encode("utf-8")
    except (TypeError, ValueError, RecursionError) as exc:
        raise CardFormatError(
            f"The card cannot be written as JSON ({exc}); check the values set on it."
        ) from None


def _b64decode(text: str, where: str) -> bytes:
    data = charx.decode_base64(text)
    if data is None:
        raise CardFormatError(f"{where} is not valid base64; the card data is damaged.")
    return data


def _b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# ---------------------------------------------------------------- dict -> card


def _card_from_data(data: dict[str, Any], top: dict[str, Any], required: Sequence[str]) -> CharacterCard:
    known = (*V3_FIELDS, *OPTIONAL_FIELDS)
    values = {name: _CHECKS[name](data[name], f"data.{name}") for name in known if data.get(name) is not None}
    extensions = values.get("extensions", {})
    extra_top = {
        key: value
        for key, value in top.items()
        if key not in ("spec", "spec_version", "data")
        and key not in _MIRRORS
        and not (key in _EXTENSION_MIRRORS and key in extensions)
    }
    return CharacterCard(
        **values,
        extra_data={key: value for key, value in data.items() if key not in known},
        extra_top_level=extra_top,
        missing_fields=frozenset(name for name in required if name not in values),
    )


def _card_from_v1(obj: dict[str, Any]) -> CharacterCard:
    values: dict[str, Any] = {}
    used = {"spec", "spec_version"}  # null or meaningless without a spec; exports write their own
    mapping: list[tuple[str, str, Callable[[Any, str], Any]]] = [(f, f, _text) for f in V1_FIELDS]
    mapping += [(key, name, _text) for key, name in _V1_ALIASES.items()]
    mapping += [("creatorcomment", "creator_notes", _text), ("tags", "tags", _texts)]
    for key, name, check in mapping:
        if key in obj and obj[key] is None:
            used.add(key)  # null reads as absent, as in V2/V3 data
        elif key in obj and name not in values:
            values[name] = check(obj[key], key)
            used.add(key)
    return CharacterCard(**values, extra_top_level={k: v for k, v in obj.items() if k not in used})


def card_from_json(obj: Any, where: str = "The card") -> tuple[CharacterCard, CardSpec]:
    """A card from parsed JSON of any spec (V1 flat, V2, V3), with field types checked."""
    if not isinstance(obj, dict):
        raise CardFormatError(f"{where} is {_kind(obj)} of JSON, not a character card object.")
    spec, data = obj.get("spec"), obj.get("data")
    if spec not in (None, "chara_card_v2", "chara_card_v3"):
        raise CardFormatError(
            f"{where} has spec {str(spec)[:60]!r}; supported are chara_card_v2, chara_card_v3 and V1 cards."
        )
    if spec is None and data is None:
        if "name" not in obj and "char_name" not in obj:
            raise CardFormatError(
                f"{where} is JSON but not a character card: it has no 'spec' and no 'name'."
            )
        return _card_from_v1(obj), "v1"
    if not isinstance(data, dict):
        raise CardFormatError(f"{where} says it is {spec or 'a V2 card'} but has no 'data' object.")
    if spec == "chara_card_v3":
        return _card_from_data(data, obj, V3_FIELDS), "v3"
    return _card_from_data(data, obj, V2_FIELDS), "v2"  # a 'data' object without a spec reads as V2


# ---------------------------------------------------------------- card -> dict


def _data_object(card: CharacterCard, names: Sequence[str]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for name in names:
        value = getattr(card, name)
        if value is None or (name in card.missing_fields and value == _empty(name)):
            continue
        data[name] = copy.deepcopy(value)
    for key, value in card.extra_data.items():
        data.setdefault(key, copy.deepcopy(value))
    return data


def card_to_v3(card: CharacterCard) -> dict[str, Any]:
    top = copy.deepcopy(card.extra_top_level)
    data = _data_object(card, (*V3_FIELDS, *OPTIONAL_FIELDS))
    return {**top, "spec": "chara_card_v3", "spec_version": "3.0", "data": data}


def card_to_v2(card: CharacterCard) -> dict[str, Any]:
    """V2 with SillyTavern's V1 mirrors; V3 additions ride along in ``data``, skipped by V2 readers."""
    names = [*V2_FIELDS, *OPTIONAL_FIELDS]
    if card.group_only_greetings:
        names.append("group_only_greetings")
    top = copy.deepcopy(card.extra_top_level)
    top.update({name: getattr(card, name) for name in V1_FIELDS})
    top["creatorcomment"] = card.creator_notes
    top["tags"] = list(card.tags)
    for key in _EXTENSION_MIRRORS:
        if key in card.extensions:
            top[key] = copy.deepcopy(card.extensions[key])
    return {**top, "spec": "chara_card_v2", "spec_version": "2.0", "data": _data_object(card, names)}


def export_card_json(card: CharacterCard, spec: Literal["v2", "v3"] = "v3") -> bytes:
    if spec not in ("v2", "v3"):
        raise CardFormatError(f"Cannot export spec {spec!r}; choose 'v2' or 'v3'.")
    return _dump(card_to_v3(card) if spec == "v3" else card_to_v2(card), indent=2)


# ---------------------------------------------------------------- import


def _is_card_chunk(keyword: str) -> bool:
    return keyword.lower() in ("chara", "ccv3") or keyword.startswith(PNG_ASSET_PREFIX)


def _import_png(data: bytes) -> ImportedCard:
    texts = png.read_text_chunks(data)
    by_keyword: dict[str, str] = {}
    asset_chunks: dict[str, str] = {}
    for text in texts:
        by_keyword.setdefault(text.keyword.lower(), text.text)
        if text.keyword.startswith(PNG_ASSET_PREFIX):
            asset_chunks.setdefault(text.keyword[len(PNG_ASSET_PREFIX) :], text.text)
    keyword = "ccv3" if "ccv3" in by_keyword else "chara" if "chara" in by_keyword else None
    if keyword is None:
        raise CardFormatError(
            "The PNG holds no character card (no 'chara' or 'ccv3' text chunk); it is a plain image. "
            "Export the card from its app as a PNG card, JSON or CHARX."
        )
    where = f"The PNG '{keyword}' chunk"
    card, spec = card_from_json(_parse_json(_b64decode(by_keyword[keyword], where), where), where)
    avatar = png.rewrite_text_chunks(data, drop=_is_card_chunk)
    assets = charx.collect_assets(card.assets, card.extensions, charx.AssetSources(avatar, asset_chunks))
    return ImportedCard(card, avatar, assets, "png", spec)


def _import_json(data: bytes) -> ImportedCard:
    card, spec = card_from_json(_parse_json(data, "The JSON file"), "The JSON file")
    assets = charx.collect_assets(card.assets, card.extensions, charx.AssetSources())
    return ImportedCard(card, charx.main_icon(assets), assets, "json", spec)


def _import_charx(data: bytes) -> ImportedCard:
    archive = charx.CharxReader(data)
    if charx.CARD_MEMBER not in archive.names:
        raise CardFormatError("The CHARX archive has no card.json at its root; it is not a character card.")
    where = "card.json in the CHARX archive"
    card, spec = card_from_json(_parse_json(archive.read(charx.CARD_MEMBER), where), where)
    # RisuAI's JPEG-with-zip export: the image in front of the archive is the card's own icon.
    default_icon = archive.prefix if charx.sniff_image_ext(archive.prefix) != "unknown" else None
    assets = charx.collect_assets(
        card.assets, card.extensions, charx.AssetSources(default_icon, None, archive)
    )
    return ImportedCard(card, charx.main_icon(assets) or default_icon, assets, "charx", spec)


def _detect(data: bytes) -> Callable[[bytes], ImportedCard]:
    if png.is_png(data):
        return _import_png
    if charx.is_zip(data) or (data.startswith(b"\xff\xd8\xff") and b"PK\x05\x06" in data[-70000:]):
        return _import_charx
    if data.lstrip(b"\xef\xbb\xbf \t\r\n").startswith((b"{", b"[")):
        return _import_json
    if data.startswith(b"\xff\xd8\xff"):
        raise CardFormatError(
            "The file is a JPEG image without a card; cards live in PNG, JSON or CHARX files."
        )
    raise CardFormatError("The file is not a PNG, JSON or CHARX character card.")


def import_card(data: bytes, filename: str | None = None) -> ImportedCard:
    """Read a card from PNG/APNG (``ccv3`` wins over ``chara``), JSON (V1, V2, V3) or CHARX bytes.

    Raises :class:`CardFormatError` for anything unusable; nothing is returned partially.
    """
    try:
        if len(data) > charx.MAX_CHARX_BYTES:
            raise CardFormatError(f"The file is {len(data) // (1024 * 1024)} MiB; too large to be a card.")
        try:
            return _detect(data)(data)
        except (png.PngFormatError, charx.CharxFormatError) as exc:
            raise CardFormatError(exc.message) from exc
    except CardFormatError as exc:
        if filename:
            raise CardFormatError(f"{filename[:200]}: {exc.message}") from exc
        raise


# ---------------------------------------------------------------- PNG and CHARX export


def export_card_png(
    card: CharacterCard, image: bytes | None = None, assets: Sequence[CardAsset] = ()
) -> bytes:
    """A PNG with a V3 ``ccv3`` chunk and a V2 ``chara`` chunk (with mirrors, as SillyTavern writes).

    ``image`` (PNG or APNG) defaults to a grey placeholder; assets addressed as ``__asset:{key}`` are
    written back to their ``chara-ext-asset_:{key}`` chunks.
    """
    base = png.placeholder_png() if image is None else image
    if not png.is_png(base):
        raise CardFormatError(
            f"The card image must be a PNG, not {charx.sniff_image_ext(base)}; convert it first."
        )
    chunks: dict[str, str] = {}
    for asset in assets:
        if asset.data is not None and asset.uri.startswith("__asset:"):
            chunks.setdefault(PNG_ASSET_PREFIX + asset.uri[len("__asset:") :], _b64encode(asset.data))
    add = list(chunks.items())
    add.append(("chara", _b64encode(_dump(card_to_v2(card)))))
    add.append(("ccv3", _b64encode(_dump(card_to_v3(card)))))
    try:
        return png.rewrite_text_chunks(base, drop=_is_card_chunk, add=add)
    except png.PngFormatError as exc:
        raise CardFormatError(f"The card image: {exc.message}") from exc


def export_card_charx(
    card: CharacterCard, assets: Sequence[CardAsset] = (), avatar: bytes | None = None
) -> bytes:
    """A CHARX zip: ``card.json`` (V3) plus every asset with bytes as an ``embeded://`` member.

    Assets known by another URI (``__asset:``, ``data:``, ``ccdefault:``) and RisuAI's V2 emotion list
    move into ``data.assets`` with member URIs, as RisuAI converts them; ``avatar`` becomes the main icon.
    """
    packed = charx.pack_assets(card.assets, assets, avatar)
    written = replace(
        card, assets=packed.descriptors, extensions=charx.drop_risu_refs(card.extensions, packed.moved_uris)
    )
    entries = [(charx.CARD_MEMBER, _dump(card_to_v3(written), indent=2)), *packed.members.items()]
    try:
        return charx.write_charx(entries)
    except charx.CharxFormatError as exc:
        raise CardFormatError(exc.message) from exc
