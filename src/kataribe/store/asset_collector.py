"""Collects what no row needs: asset rows nothing references, their files, orphan and temporary files."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Column, Table, and_, delete, exists, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.inspection import inspect
from sqlalchemy.orm import Session

from kataribe.store.assets import TEMP_PREFIX, AssetStore
from kataribe.store.db import Database
from kataribe.store.models import Asset, Base

log = logging.getLogger(__name__)

YOUNG_FILE_S = 300.0
"""Files written (or reused) this recently are left alone after a delete: an import or restore may
have stored them and not committed the row that lists them yet."""
_HASH_NAME = re.compile(r"[0-9a-f]{64}")
_RELEASED = "kataribe_assets_released"


@dataclass
class Collected:
    """What one collection removed."""

    rows: list[str] = field(default_factory=list)
    files: int = 0
    temporary: int = 0


def asset_references() -> list[tuple[Table, Column[Any]]]:
    """Every column of the schema that points at an asset (read from the foreign keys, so a new
    table that keeps assets is covered without touching this file)."""
    found: list[tuple[Table, Column[Any]]] = []
    for table in Base.metadata.sorted_tables:
        for column in table.columns:
            if any(fk.column.table.name == Asset.__tablename__ for fk in column.foreign_keys):
                found.append((table, column))
    return found


def collect_assets(
    db: Database, store: AssetStore, *, young_s: float = YOUNG_FILE_S, whole_store: bool = False
) -> Collected:
    """Delete asset rows that no row references, and their files. With ``whole_store`` (at start)
    also every file in the store without a row and the temporary files of writes that never
    finished (a killed import or restore). Files younger than ``young_s`` stay."""
    done = Collected()
    unreferenced = and_(*(~exists().where(column == Asset.sha256) for _table, column in asset_references()))
    try:
        with db.session() as session:
            done.rows = list(session.scalars(select(Asset.sha256).where(unreferenced)))
            if done.rows:
                session.execute(delete(Asset).where(Asset.sha256.in_(done.rows)).where(unreferenced))
        listed: set[str] = set()
        if whole_store:
            with db.read_session() as session:
                listed = set(session.scalars(select(Asset.sha256)))
    except SQLAlchemyError as exc:  # busy (a long restore holds the write lock): next time
        log.warning("asset collection skipped: %s", str(exc)[:200])
        return done
    paths = _store_files(store) if whole_store else [store.path(sha) for sha in done.rows]
    cutoff = time.time() - young_s
    for path in paths:
        name = path.name
        try:
            if path.stat().st_mtime > cutoff:
                continue
            if name.startswith(TEMP_PREFIX):
                path.unlink()
                done.temporary += 1
            elif _HASH_NAME.fullmatch(name) and name not in listed:
                path.unlink()
                done.files += 1
        except FileNotFoundError:
            continue
    if done.rows or done.files or done.temporary:
        log.info(
            "collected %d unreferenced assets, %d files, %d temporary files",
            len(done.rows),
            done.files,
            done.temporary,
        )
    return done


def _store_files(store: AssetStore) -> list[Path]:
    """Files in the store's ``ab/cd/`` folders (nothing else there is Kataribe's to remove)."""
    found: list[Path] = []
    if not store.root.is_dir():
        return found
    for first in _dirs(store.root):
        for second in _dirs(first.path):
            with contextlib.suppress(OSError), os.scandir(second.path) as files:
                found.extend(Path(entry.path) for entry in files if entry.is_file(follow_symlinks=False))
    return found


def _dirs(path: str | os.PathLike[str]) -> list[os.DirEntry[str]]:
    with contextlib.suppress(OSError), os.scandir(path) as found:
        return [entry for entry in found if entry.is_dir(follow_symlinks=False) and len(entry.name) == 2]
    return []


def collect_after_releases(db: Database, store: AssetStore) -> None:
    """Collect after every committed write that deleted a row holding an asset or pointed one
    elsewhere (a character, a sprite, an avatar), so deleted cards do not keep their files."""
    holders = {table.name for table, _column in asset_references()}
    columns = {(table.name, column.name) for table, column in asset_references()}

    def note_releases(session: Session, _context: object, _instances: object) -> None:
        for obj in session.deleted:
            if inspect(obj).mapper.local_table.name in holders:
                session.info[_RELEASED] = True
                return
        for obj in session.dirty:
            state = inspect(obj)
            table = state.mapper.local_table.name
            for attr in state.mapper.column_attrs:
                if (table, attr.columns[0].name) in columns and state.attrs[attr.key].history.deleted:
                    session.info[_RELEASED] = True
                    return

    def collect_if_released(session: Session) -> None:
        if session.info.pop(_RELEASED, False):
            collect_assets(db, store)

    db.on_write_sessions("before_flush", note_releases)
    db.on_write_sessions("after_commit", collect_if_released)
