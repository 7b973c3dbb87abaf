"""The Kataribe backup's tables: every column of the schema and the check a restore runs on it."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Float, Integer, String, Table, UniqueConstraint
from sqlalchemy import Column as SqlColumn

from kataribe.errors import InvalidRequest
from kataribe.store.assets import check_sha256, normalize_mime
from kataribe.store.errors import InvalidValue
from kataribe.store.fields import MAX_JSON_DOCUMENT_CHARS, MAX_TEXT_CHARS, checked_json_object, checked_text
from kataribe.store.models import (
    ACTIVATION_STRATEGIES,
    ASSET_KINDS,
    GENERATION_MODES,
    MESSAGE_ROLES,
    PERSONA_POSITIONS,
    Base,
    UtcDateTime,
)

BACKUP_FORMAT = "kataribe-backup"
BACKUP_VERSION = 1
_INT64 = 2**63


class BackupFormatError(InvalidRequest):
    """The bytes are not a Kataribe backup this version can restore; nothing was stored."""

    def __init__(self, message: str) -> None:
        super().__init__(message, param="file", code="bad_backup")


# -- what each column holds -------------------------------------------------------------------------

Check = Callable[[str, object], object]


def refused_value(where: str, expected: str, value: object) -> BackupFormatError:
    """The error for a value that is not what its column holds, quoting the start of the value."""
    return BackupFormatError(f"{where} must be {expected}; got {type(value).__name__} {value!r:.60}.")


def _int(where: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not -_INT64 <= value < _INT64:
        raise refused_value(where, "a whole number", value)
    return value


def _bool(where: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise refused_value(where, "true or false", value)
    return value


def _float(where: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise refused_value(where, "a finite number", value)
    return float(value)


def _text(where: str, value: object) -> str:
    try:
        return checked_text(where, value, max_chars=MAX_TEXT_CHARS)
    except InvalidValue as exc:
        raise BackupFormatError(exc.message) from None


def _object(where: str, value: object) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise refused_value(where, "a JSON object", value)
    try:
        return checked_json_object(where, value, max_chars=MAX_JSON_DOCUMENT_CHARS)
    except InvalidValue as exc:
        raise BackupFormatError(exc.message) from None


def _json_value(where: str, value: object) -> object:
    return _object(where, {"value": value})["value"]


def _texts(where: str, value: object) -> list[str]:
    if not isinstance(value, list):
        raise refused_value(where, "a list of strings", value)
    return [_text(f"{where}[{i}]", item) for i, item in enumerate(value)]


def _moment(where: str, value: object) -> datetime:
    if not isinstance(value, str) or len(value) > 64:
        raise refused_value(where, "an ISO 8601 date and time", value)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise refused_value(where, "an ISO 8601 date and time", value) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _sha256(where: str, value: object) -> str:
    try:
        return check_sha256(value)
    except InvalidValue:
        raise refused_value(where, "a sha256 of 64 hex digits", value) from None


def _mime(where: str, value: object) -> str:
    try:
        return normalize_mime(value)
    except InvalidValue:
        raise refused_value(where, "a media type like image/png", value) from None


def _choice(allowed: tuple[str, ...]) -> Check:
    def check(where: str, value: object) -> str:
        if not isinstance(value, str) or value not in allowed:
            raise refused_value(where, f"one of {', '.join(allowed)}", value)
        return value

    return check


# Columns whose type alone does not say what they may hold; the rest follow their SQL type.
_CHECK_OVERRIDES: dict[str, Check] = {
    "assets.mime": _mime,
    "characters.tags": _texts,
    "global_variables.value": _json_value,
    "character_assets.kind": _choice(ASSET_KINDS),
    "personas.position": _choice(PERSONA_POSITIONS),
    "personas.role": _choice(MESSAGE_ROLES),
    "groups.activation_strategy": _choice(ACTIVATION_STRATEGIES),
    "groups.generation_mode": _choice(GENERATION_MODES),
    "chats.author_note_role": _choice(MESSAGE_ROLES),
    "messages.role": _choice(MESSAGE_ROLES),
}


@dataclass(frozen=True)
class ColumnSpec:
    name: str
    check: Check
    nullable: bool
    ref: str | None  # the table this column points into (by that table's key)


@dataclass(frozen=True)
class TableSpec:
    """A table in the document; tables come in an order where every reference points backwards,
    except to later tables (``chats.head_message_id``), which are filled in at the end."""

    table: Table
    columns: tuple[ColumnSpec, ...]
    key: str  # what other rows reference: the id, or the natural key (sha256, name)
    renumbered: bool  # the database gives the rows new ids on restore
    unique: tuple[tuple[str, ...], ...]

    @property
    def name(self) -> str:
        return self.table.name


def _check_for(table: Table, column: SqlColumn[Any]) -> Check:
    override = _CHECK_OVERRIDES.get(f"{table.name}.{column.name}")
    if override is not None:
        return override
    if any(fk.column.table.name == "assets" for fk in column.foreign_keys) or (
        table.name == "assets" and column.name == "sha256"
    ):
        return _sha256
    for sql_type, check in _CHECKS_BY_TYPE:
        if isinstance(column.type, sql_type):
            return check
    raise TypeError(f"No backup check for {table.name}.{column.name} ({column.type!r}); add one.")


_CHECKS_BY_TYPE: tuple[tuple[type[Any], Check], ...] = (
    (UtcDateTime, _moment),
    (Boolean, _bool),
    (Integer, _int),
    (Float, _float),
    (JSON, _object),
    (String, _text),
)


def _spec_of(table: Table) -> TableSpec:
    columns = tuple(
        ColumnSpec(
            name=column.name,
            check=_check_for(table, column),
            nullable=bool(column.nullable),
            ref=next(iter(column.foreign_keys)).column.table.name if column.foreign_keys else None,
        )
        for column in table.columns
    )
    primary = tuple(column.name for column in table.primary_key.columns)
    renumbered = primary == ("id",) and isinstance(table.c.id.type, Integer)
    uniques = tuple(
        tuple(column.name for column in constraint.columns)
        for constraint in table.constraints
        if isinstance(constraint, UniqueConstraint)
    )
    return TableSpec(table, columns, primary[0], renumbered, (primary, *uniques))


BACKUP_TABLES: tuple[TableSpec, ...] = tuple(_spec_of(table) for table in Base.metadata.sorted_tables)
"""Every table of the schema, in the order a restore inserts them."""
SPECS = {spec.name: spec for spec in BACKUP_TABLES}
REFERENCED_TABLES = frozenset(column.ref for spec in BACKUP_TABLES for column in spec.columns if column.ref)


def exported_value(value: object) -> object:
    """A column value as the document holds it (times as ISO 8601 with their UTC offset)."""
    return value.isoformat() if isinstance(value, datetime) else value
