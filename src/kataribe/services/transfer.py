"""Moving a library in and out: SillyTavern chats (see st_chats) and the full Kataribe backup."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.orm import Session

from kataribe.errors import InvalidRequest
from kataribe.services.backup import (
    BACKUP_FORMAT,
    BACKUP_TABLES,
    BACKUP_VERSION,
    REFERENCED_TABLES,
    CheckedBackup,
    TableSpec,
    exported_value,
    read_backup,
)
from kataribe.services.context import RoleplayContext
from kataribe.services.st_chats import export_st_chat, import_st_chat
from kataribe.store.models import (
    Asset,
    Character,
    Chat,
    GlobalVariable,
    Group,
    Lorebook,
    ModelEntry,
    Persona,
)

__all__ = ["export_backup", "export_st_chat", "import_st_chat", "restore_backup"]

_NOT_EMPTY = (Character, Chat, Persona, Lorebook, Group)
_IN_CHUNK = 500  # values per IN (...) query, well under every database's parameter limit
_INSERT_BATCH = 1000  # rows per INSERT ... RETURNING batch


# -- export ---------------------------------------------------------------------------------------


def export_backup(ctx: RoleplayContext) -> bytes:
    """Everything in the database and the asset files it lists, as one UTF-8 JSON document."""
    document: dict[str, Any] = {
        "format": BACKUP_FORMAT,
        "version": BACKUP_VERSION,
        "created_at": datetime.now(UTC).isoformat(),
    }
    with ctx.db.read_session() as session:
        for spec in BACKUP_TABLES:
            order = [spec.table.c[name] for name in spec.unique[0]]
            rows = session.execute(select(spec.table).order_by(*order)).mappings()
            document[spec.name] = [{key: exported_value(value) for key, value in row.items()} for row in rows]
    for asset in document[Asset.__tablename__]:
        # A file missing from the store stays missing: the backup records the row without bytes.
        path = ctx.assets.path(asset["sha256"])
        data = path.read_bytes() if path.is_file() else None
        asset["data"] = base64.b64encode(data).decode("ascii") if data is not None else None
    return json.dumps(document, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")


# -- restore --------------------------------------------------------------------------------------


def restore_backup(ctx: RoleplayContext, data: bytes) -> dict[str, int]:
    """Restore a backup onto an empty library; returns how many rows of each table were restored.

    The whole document is checked first and written in one transaction: a bad backup stores nothing.
    """
    checked = read_backup(data, max_asset_bytes=ctx.assets.max_bytes)
    with ctx.db.session() as session:
        _refuse_if_not_empty(session)
        _write(session, checked)
        # Files last, inside the transaction: if one fails the rows roll back; a file written before
        # a failure is harmless (content-addressed, and listed by no row).
        for blob in checked.files.values():
            ctx.assets.put(blob)
    return checked.counts()


def _refuse_if_not_empty(session: Session) -> None:
    found = [
        model.__tablename__
        for model in _NOT_EMPTY
        if session.scalar(select(func.count()).select_from(model)) != 0
    ]
    if found:
        raise InvalidRequest(
            f"A backup restores onto an empty library, but this one already has {', '.join(found)}. "
            "Start Kataribe with a new, empty data directory and restore there.",
            param="file",
            code="library_not_empty",
        )


def _write(session: Session, checked: CheckedBackup) -> None:
    new_ids: dict[str, dict[int, int]] = {}
    inserted: set[str] = set()
    later: list[tuple[TableSpec, str, str, list[tuple[int, int]]]] = []
    for spec in BACKUP_TABLES:
        rows = _rows_to_insert(session, spec, checked.rows[spec.name])
        pending = {
            c.name for c in spec.columns if c.ref is not None and c.ref != spec.name and c.ref not in inserted
        }
        if spec.renumbered and spec.name in REFERENCED_TABLES:
            _insert_renumbered(session, spec, rows, pending, new_ids)
        elif rows:
            session.execute(insert(spec.table), [_mapped(spec, row, pending, new_ids) for row in rows])
        inserted.add(spec.name)
        for column in spec.columns:
            if column.name in pending:
                links = [(row[spec.key], row[column.name]) for row in rows if row[column.name] is not None]
                later.append((spec, column.name, column.ref or "", links))
    for spec, column_name, ref, links in later:
        own = new_ids.get(spec.name, {})
        for own_key, target in links:
            stmt = update(spec.table).where(spec.table.c[spec.key] == own.get(own_key, own_key))
            session.execute(stmt.values({column_name: new_ids.get(ref, {}).get(target, target)}))


def _insert_renumbered(
    session: Session,
    spec: TableSpec,
    rows: list[dict[str, Any]],
    pending: set[str],
    new_ids: dict[str, dict[int, int]],
) -> None:
    """Insert rows that get new ids, in batches (a 30,000-message chat is a few statements, not
    30,000): self-references (a message's parent) are set once every new id is known."""
    ids = new_ids.setdefault(spec.name, {})
    own = {c.name for c in spec.columns if c.ref == spec.name}
    for start in range(0, len(rows), _INSERT_BATCH):
        batch = rows[start : start + _INSERT_BATCH]
        values = [_mapped(spec, row, pending | own, new_ids) for row in batch]
        returning = insert(spec.table).returning(spec.table.c.id, sort_by_parameter_order=True)
        for row, new_id in zip(batch, session.scalars(returning, values), strict=True):
            ids[row["id"]] = int(new_id)
    for name in sorted(own):
        links = [{"_id": ids[row["id"]], "_to": ids[row[name]]} for row in rows if row[name] is not None]
        for start in range(0, len(links), _INSERT_BATCH):
            stmt = update(spec.table).where(spec.table.c.id == bindparam("_id"))
            session.connection().execute(
                stmt.values({name: bindparam("_to")}), links[start : start + _INSERT_BATCH]
            )


def _mapped(
    spec: TableSpec, row: dict[str, Any], pending: set[str], new_ids: dict[str, dict[int, int]]
) -> dict[str, Any]:
    """The row as inserted: no old id, references turned into new ids, forward ones left for later."""
    values: dict[str, Any] = {}
    for column in spec.columns:
        value = row[column.name]
        if column.name == spec.key and spec.renumbered:
            continue
        if column.name in pending:
            value = None
        elif value is not None and column.ref is not None and column.ref in new_ids:
            value = new_ids[column.ref][value]
        values[column.name] = value
    return values


def _rows_to_insert(session: Session, spec: TableSpec, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Assets already described by a row are kept, and so are models registered at the same path (a
    fresh data dir has the built-in model: it takes the backup's load settings); global variables in
    the backup replace their namesakes. These are the only tables that may hold rows in an otherwise
    empty library."""
    if spec.table is Asset.__table__:
        present = _existing(session, Asset.sha256, [row["sha256"] for row in rows])
        return [row for row in rows if row["sha256"] not in present]
    if spec.table is ModelEntry.__table__:
        present = _existing(session, ModelEntry.path, [row["path"] for row in rows])
        for row in rows:  # the row stays, how the user loads the model comes back
            if row["path"] in present and row.get("settings"):
                path_is = ModelEntry.path == row["path"]
                session.execute(update(ModelEntry).where(path_is).values(settings=row["settings"]))
        return [row for row in rows if row["path"] not in present]
    if spec.table is GlobalVariable.__table__:
        names = [row["name"] for row in rows]
        for start in range(0, len(names), _IN_CHUNK):
            session.execute(
                delete(GlobalVariable).where(GlobalVariable.name.in_(names[start : start + _IN_CHUNK]))
            )
    return rows


def _existing(session: Session, column: Any, values: Iterable[str]) -> set[str]:
    wanted = list(values)
    found: set[str] = set()
    for start in range(0, len(wanted), _IN_CHUNK):
        found.update(session.scalars(select(column).where(column.in_(wanted[start : start + _IN_CHUNK]))))
    return found
