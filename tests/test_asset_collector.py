"""The asset collector on SQLite and PostgreSQL: what any row references stays, the rest goes."""

from __future__ import annotations

import os
import time
from pathlib import Path

from kataribe.services.characters import CharacterService
from kataribe.services.context import RoleplayContext
from kataribe.services.personas import PersonaService
from kataribe.store.asset_collector import asset_references, collect_assets
from kataribe.store.assets import remember_asset
from kataribe.store.models import Asset
from tests.hostile import png
from tests.libraries import new_character, row_count


def _age_all(root: Path) -> None:
    old = time.time() - 3600
    for path in root.rglob("*"):
        if path.is_file():
            os.utime(path, (old, old))


def test_every_column_that_keeps_an_asset_is_known() -> None:
    names = {f"{table.name}.{column.name}" for table, column in asset_references()}
    assert names == {"characters.avatar_sha256", "character_assets.sha256", "personas.avatar_sha256"}


def test_a_deleted_character_releases_only_what_nothing_else_uses(ctx: RoleplayContext) -> None:
    characters, personas = CharacterService(ctx), PersonaService(ctx)
    kept, gone = new_character(ctx, "Kept"), new_character(ctx, "Gone")
    shared, own, face = png(8, 8, padding=1), png(9, 9, padding=1), png(10, 10, padding=1)
    characters.add_sprite(kept, "joy", shared)
    characters.add_sprite(gone, "joy", shared)
    characters.add_sprite(gone, "anger", own)
    persona = personas.create({"name": "P"})["id"]
    avatar = personas.set_avatar(persona, face)["avatar"]
    sprites = {s["label"]: s["asset"] for s in characters.view(gone)["sprites"]}
    _age_all(ctx.assets.root)

    characters.delete(gone)

    assert row_count(ctx, Asset) == 2
    assert not ctx.assets.exists(sprites["anger"])
    assert ctx.assets.exists(sprites["joy"]) and ctx.assets.exists(avatar)


def test_a_young_file_survives_its_row_so_an_import_reusing_it_is_never_left_without_bytes(
    ctx: RoleplayContext,
) -> None:
    image = png(12, 12)
    with ctx.db.session() as s:
        sha = remember_asset(s, ctx.assets, image).sha256  # a row no one references (yet)
    collect_assets(ctx.db, ctx.assets)
    assert row_count(ctx, Asset) == 0 and ctx.assets.exists(sha)  # the bytes may be in use
    character = new_character(ctx, "Later")
    CharacterService(ctx).add_sprite(character, "joy", image)
    assert ctx.assets.read(sha) == image


def test_at_start_orphan_and_temporary_files_go_and_listed_ones_stay(ctx: RoleplayContext) -> None:
    character = new_character(ctx, "Listed")
    listed = CharacterService(ctx).add_sprite(character, "joy", png(16, 16))["sprites"][0]["asset"]
    folder = ctx.assets.root / "ef" / "01"
    folder.mkdir(parents=True)
    orphan, temporary = folder / ("ef01" + "a" * 60), folder / ".tmp-abc123"
    orphan.write_bytes(b"from a killed restore")
    temporary.write_bytes(b"half a file")
    stranger = ctx.assets.root / "README.txt"
    stranger.write_text("not ours")

    done = ctx.collect_assets()

    assert (done.files, done.temporary) == (1, 1)
    assert not orphan.exists() and not temporary.exists()
    assert ctx.assets.exists(listed) and stranger.exists()
