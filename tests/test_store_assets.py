"""Content-addressed assets: files under their sha256 only, hostile ids refused, sizes limited."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from kataribe.store.assets import AssetStore, remember_asset, sniff_mime
from kataribe.store.db import Database, sqlite_url
from kataribe.store.errors import AssetTooLarge, InvalidValue, NotFound
from kataribe.store.models import Asset

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 16
GIF = b"GIF89a" + b"\x00" * 16
WEBP = b"RIFF\x10\x00\x00\x00WEBPVP8 " + b"\x00" * 8

HOSTILE_IDS: list[Any] = [
    "",
    "..",
    "../../etc/passwd",
    "/" + "0" * 63,
    "0" * 63,
    "0" * 65,
    "0" * 63 + "/",
    "0" * 64 + "\n",
    "g" * 64,
    "０" * 64,  # full-width digits are digits to str.isdigit, not hex
    "0" * 62 + "..",
    None,
    64,
    b"0" * 64,
]


def files_under(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.is_file()}


def test_put_stores_bytes_under_their_sha256_in_two_levels_of_folders(tmp_path: Path) -> None:
    store = AssetStore(tmp_path / "assets")
    digest = store.put(PNG)
    assert digest == hashlib.sha256(PNG).hexdigest()
    assert store.path(digest) == tmp_path / "assets" / digest[:2] / digest[2:4] / digest
    assert store.read(digest) == PNG
    assert store.exists(digest)


def test_the_same_bytes_are_stored_once(tmp_path: Path) -> None:
    store = AssetStore(tmp_path / "assets")
    assert store.put(PNG) == store.put(bytearray(PNG)) == store.put(memoryview(PNG))
    assert len(files_under(tmp_path)) == 1


def test_a_cut_short_file_is_written_again(tmp_path: Path) -> None:
    store = AssetStore(tmp_path / "assets")
    digest = store.put(PNG)
    store.path(digest).write_bytes(PNG[:5])
    store.put(PNG)
    assert store.read(digest) == PNG


@pytest.mark.parametrize("bad", HOSTILE_IDS)
def test_anything_but_a_sha256_hex_string_is_refused_as_an_id(tmp_path: Path, bad: Any) -> None:
    store = AssetStore(tmp_path / "assets")
    for call in (store.path, store.read, store.exists):
        with pytest.raises(InvalidValue, match="sha256 as 64 hex digits") as err:
            call(bad)
        assert err.value.param == "sha256"


def test_uppercase_hex_names_the_same_file(tmp_path: Path) -> None:
    store = AssetStore(tmp_path / "assets")
    digest = store.put(GIF)
    assert store.read(digest.upper()) == GIF


def test_a_missing_asset_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFound) as err:
        AssetStore(tmp_path / "assets").read("0" * 64)
    assert err.value.status_code == 404


@settings(max_examples=40, deadline=None)
@given(blobs=st.lists(st.binary(max_size=64), min_size=1, max_size=5))
def test_nothing_is_ever_written_outside_the_root_and_no_temp_file_is_left(
    tmp_path_factory: pytest.TempPathFactory, blobs: list[bytes]
) -> None:
    base = tmp_path_factory.mktemp("assets")
    store = AssetStore(base / "root")
    for blob in blobs:
        assert store.read(store.put(blob)) == blob
    written = files_under(base)
    assert all(p.is_relative_to(base / "root") for p in written)
    assert {p.name for p in written} == {hashlib.sha256(b).hexdigest() for b in blobs}


def test_size_limit_refuses_with_413_and_writes_nothing(tmp_path: Path) -> None:
    store = AssetStore(tmp_path / "assets", max_bytes=10)
    with pytest.raises(AssetTooLarge) as err:
        store.put(b"x" * 11)
    assert err.value.status_code == 413
    assert "limit is 10" in err.value.message
    assert files_under(tmp_path) == set()
    store.put(b"x" * 10)


def test_non_bytes_data_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidValue, match="must be bytes"):
        AssetStore(tmp_path).put("text, not bytes")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("data", "mime"),
    [(PNG, "image/png"), (JPEG, "image/jpeg"), (GIF, "image/gif"), (WEBP, "image/webp"), (b"<svg", None)],
)
def test_magic_bytes_tell_the_image_type(data: bytes, mime: str | None) -> None:
    assert sniff_mime(data) == mime


def test_real_sprites_are_sniffed_as_png_and_kept_byte_for_byte(fixtures_dir: Path, tmp_path: Path) -> None:
    store = AssetStore(tmp_path / "assets")
    sprites = sorted((fixtures_dir / "sillytavern" / "Seraphina-sprites").glob("*.png"))
    assert len(sprites) == 8
    for sprite in sprites:
        data = sprite.read_bytes()
        assert sniff_mime(data) == "image/png"
        assert store.read(store.put(data, "image/png")) == data


def test_a_declared_image_type_must_match_the_bytes(tmp_path: Path) -> None:
    store = AssetStore(tmp_path / "assets")
    with pytest.raises(InvalidValue, match="declared as image/png but its bytes are not an image"):
        store.put(b"<script>alert(1)</script>", "image/png")
    with pytest.raises(InvalidValue, match="declared as image/jpeg but its bytes are image/png"):
        store.put(PNG, "IMAGE/JPEG")
    with pytest.raises(InvalidValue, match="must look like"):
        store.put(PNG, "../png")
    assert files_under(tmp_path) == set()
    store.put(b"plain words", "text/plain; charset=utf-8")


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(sqlite_url(tmp_path))
    database.migrate()
    yield database
    database.close()


def test_remember_asset_records_one_row_with_the_sniffed_type(db: Database, tmp_path: Path) -> None:
    store = AssetStore(tmp_path / "assets")
    with db.session() as s:
        first = remember_asset(s, store, WEBP)
        again = remember_asset(s, store, WEBP)
        plain = remember_asset(s, store, b"notes")
        typed = remember_asset(s, store, b"# Title", "text/markdown; charset=utf-8")
        assert (first.mime, first.size) == ("image/webp", len(WEBP))
        assert again is first
        assert plain.mime == "application/octet-stream"
        assert typed.mime == "text/markdown"
    with db.read_session() as s:
        assert s.scalar(select(func.count()).select_from(Asset)) == 3
