"""Every row the ORM writes passes the checks a restore runs: one text limit, no lone surrogate, no NUL."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import JSON, String, inspect
from sqlalchemy.orm import Session

from kataribe.store.fields import MAX_JSON_DOCUMENT_CHARS, MAX_TEXT_CHARS, checked_json_value, checked_text

if TYPE_CHECKING:
    from kataribe.store.db import Database


def check_row_values(session: Session) -> None:
    """Refuse (InvalidValue, a 400) a new or changed row whose text or JSON a backup could not carry.

    Services check their inputs with clearer messages first; this is the floor under every write
    path, so that no stored row can make ``GET /api/backup`` fail or a restore refuse it.
    """
    for obj in (*session.new, *session.dirty):
        state = inspect(obj)
        for attr in state.mapper.column_attrs:
            column = attr.columns[0]
            if state.key is not None and not state.attrs[attr.key].history.has_changes():
                continue  # an unchanged column of a loaded row was checked when it was written
            value = state.attrs[attr.key].value
            if value is None:
                continue
            if isinstance(column.type, JSON):
                checked_json_value(attr.key, value, max_chars=MAX_JSON_DOCUMENT_CHARS)
            elif isinstance(column.type, String) and isinstance(value, str):
                limit = min(column.type.length or MAX_TEXT_CHARS, MAX_TEXT_CHARS)
                checked_text(attr.key, value, max_chars=limit)


def install_row_checks(db: Database) -> None:
    """Run ``check_row_values`` before every flush of the database's write sessions."""
    db.on_write_sessions("before_flush", lambda session, _context, _instances: check_row_values(session))
