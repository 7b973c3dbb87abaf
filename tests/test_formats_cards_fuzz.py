"""Hostile input for card import: random bytes, damaged real files, random JSON under the card's keys.

Whatever comes in, import_card answers with a card or a CardFormatError, never another exception;
and a card it accepted survives every export route unchanged.
"""

from __future__ import annotations

import base64
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kataribe.formats import png
from kataribe.formats.cards import (
    OPTIONAL_FIELDS,
    V3_FIELDS,
    CardFormatError,
    ImportedCard,
    export_card_charx,
    export_card_json,
    export_card_png,
    import_card,
)

FUZZ = settings(max_examples=150, deadline=None)


def import_or_refuse(data: bytes) -> ImportedCard | None:
    try:
        return import_card(data)
    except CardFormatError as exc:
        assert exc.message and exc.code == "bad_card"
        return None


@pytest.fixture(scope="module")
def default_chan(fixtures_dir: Path) -> bytes:
    return (fixtures_dir / "cards" / "Default-chan-v3.png").read_bytes()


def mutate(data: bytes, edits: list[tuple[float, int]]) -> bytes:
    out = bytearray(data)
    for where, byte in edits:
        out[int(where * len(out))] = byte
    return bytes(out)


edits = st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), min_size=1, max_size=6)
prefixes = st.sampled_from(
    [b"", png.PNG_SIGNATURE, b"PK\x03\x04", b"PK\x05\x06", b"{", b"[", b"\xff\xd8\xff"]
)


@FUZZ
@given(prefixes, st.binary(max_size=600))
def test_random_bytes_only_ever_raise_card_format_error(prefix: bytes, body: bytes) -> None:
    import_or_refuse(prefix + body)


@FUZZ
@given(edits, st.one_of(st.none(), st.floats(0, 1)))
def test_mutated_real_png_only_ever_raises_card_format_error(
    default_chan: bytes, changes: list[tuple[float, int]], cut: float | None
) -> None:
    data = mutate(default_chan, changes)
    import_or_refuse(data if cut is None else data[: int(cut * len(data))])


@FUZZ
@given(st.integers(0, 3), edits)
def test_chunk_bodies_damaged_behind_valid_crcs_only_raise_card_format_error(
    default_chan: bytes, chunk_index: int, changes: list[tuple[float, int]]
) -> None:
    chunks = png.read_chunks(default_chan)
    chunk = chunks[min(chunk_index, len(chunks) - 1)]
    damaged = png.PngChunk(chunk.type, mutate(chunk.data, changes) if chunk.data else chunk.data)
    rebuilt = [damaged if c is chunk else c for c in chunks]
    import_or_refuse(png.PNG_SIGNATURE + b"".join(c.to_bytes() for c in rebuilt))


@FUZZ
@given(edits)
def test_damaged_card_json_in_a_valid_png_only_raises_card_format_error(
    default_chan: bytes, changes: list[tuple[float, int]]
) -> None:
    text = next(t.text for t in png.read_text_chunks(default_chan) if t.keyword == "ccv3")
    damaged = mutate(base64.b64decode(text), changes)
    data = png.rewrite_text_chunks(
        default_chan, drop=lambda k: k == "ccv3", add=[("ccv3", base64.b64encode(damaged).decode())]
    )
    import_or_refuse(data)


def small_charx() -> bytes:
    icon = {"type": "icon", "uri": "embeded://assets/icon/images/main.png", "name": "main", "ext": "png"}
    card = {"spec": "chara_card_v3", "data": {"name": "Z", "assets": [icon]}}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("card.json", json.dumps(card))
        archive.writestr("assets/icon/images/main.png", png.placeholder_png(4))
    return buffer.getvalue()


@FUZZ
@given(edits, st.one_of(st.none(), st.floats(0, 1)))
def test_mutated_charx_only_ever_raises_card_format_error(
    changes: list[tuple[float, int]], cut: float | None
) -> None:
    data = mutate(small_charx(), changes)
    import_or_refuse(data if cut is None else data[: int(cut * len(data))])


json_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
)
json_values = st.recursive(
    json_leaves,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=10,
)
asset_uris = [
    "ccdefault:",
    "embeded://a.png",
    "__asset:1",
    "https://x/y.png",
    "data:,hi",
    "data:;base64,aGk=",
]
asset_descriptors = st.fixed_dictionaries(
    {"type": st.sampled_from(["icon", "emotion", "x_a"]), "uri": st.sampled_from(asset_uris)},
    optional={"name": st.text(max_size=6), "ext": st.sampled_from(["png", "unknown"])},
)
# Values that often have the right shape, so that fuzzing also reaches the accepting paths.
field_values = st.one_of(
    json_values,
    st.text(max_size=20),
    st.lists(st.text(max_size=8), max_size=3),
    st.dictionaries(st.text(max_size=6), json_values, max_size=3),
    st.lists(asset_descriptors, max_size=3),
)
card_keys = st.sampled_from(
    [
        *V3_FIELDS,
        *OPTIONAL_FIELDS,
        "creatorcomment",
        "char_name",
        "char_greeting",
        "talkativeness",
        "x_unknown",
    ]
)
card_objects = st.dictionaries(card_keys, field_values, max_size=10)


def wrap(shape: str, obj: dict[str, Any], top: dict[str, Any]) -> Any:
    if shape == "v1":
        return {**top, **obj}
    return {**top, "spec": f"chara_card_{shape}", "spec_version": "x", "data": obj}


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["v1", "v2", "v3"]), card_objects, st.dictionaries(card_keys, field_values, max_size=3)
)
def test_random_card_json_is_refused_cleanly_or_survives_every_export(
    shape: str, obj: dict[str, Any], top: dict[str, Any]
) -> None:
    imported = import_or_refuse(json.dumps(wrap(shape, obj, top)).encode())
    if imported is None:
        return
    card = imported.card
    assert import_card(export_card_json(card, "v3")).card == card
    assert import_card(export_card_json(card, "v2")).card == card
    assert import_card(export_card_png(card, None, imported.assets)).card == card
    assert import_card(export_card_charx(card)).card == card
