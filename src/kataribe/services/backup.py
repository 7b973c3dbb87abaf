"""The Kataribe backup document: its tables, and every check a restore runs before writing a row."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Float, Integer, String, Table, UniqueConstraint
from sqlalchemy import Column as SqlColumn

from kataribe.errors import InvalidRequest
from kataribe.store.assets import check_sha256, normalize_mime, sniff_mime
from kataribe.store.errors import InvalidValue
from kataribe.store.fields import MAX_JSON_DOCUMENT_CHARS, MAX_TEXT_CHARS, checked_json_object, checked_text
from kataribe.store.images import check_image_size
from kataribe.store.models import (
    ACTIVATION_STRATEGIES,
    ASSET_KINDS,
    GENERATION_MODES,
    MESSAGE_ROLES,
    PERSONA_POSITIONS,
    Asset,
    Base,
    UtcDateTime,
)

BACKUP_FORMAT = "kataribe-backup"
BACKUP_VERSION = 1
_INT64 = 2**63
_IMAGE_MIMES = ("image/png", "image/jpeg", "image/gif", "image/webp")
_OWN_KEYS = ("format", "version", "created_at")


class BackupFormatError(InvalidRequest):
    """The bytes are not a Kataribe backup this version can restore; nothing was stored."""

    def __init__(self, message: str) -> None:
        super().__init__(message, param="file", code="bad_backup")


# -- what each column holds -------------------------------------------------------------------------

Check = Callable[[str, object], object]


def _fail(where: str, expected: str, value: object) -> BackupFormatError:
    return BackupFormatError(f"{where} must be {expected}; got {type(value).__name__} {value!r:.60}.")


def _int(where: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not -_INT64 <= value < _INT64:
        raise _fail(where, "a whole number", value)
    return value


def _bool(where: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise _fail(where, "true or false", value)
    return value


def _float(where: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _fail(where, "a finite number", value)
    return float(value)


def _text(where: str, value: object) -> str:
    try:
        return checked_text(where, value, max_chars=MAX_TEXT_CHARS)
    except InvalidValue as exc:
        raise BackupFormatError(exc.message) from None


def _object(where: str, value: object) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _fail(where, "a JSON object", value)
    try:
        return checked_json_object(where, value, max_chars=MAX_JSON_DOCUMENT_CHARS)
    except InvalidValue as exc:
        raise BackupFormatError(exc.message) from None


def _json_value(where: str, value: object) -> object:
    return _object(where, {"value": value})["value"]


def _texts(where: str, value: object) -> list[str]:
    if not isinstance(value, list):
        raise _fail(where, "a list of strings", value)
    return [_text(f"{where}[{i}]", item) for i, item in enumerate(value)]


def _moment(where: str, value: object) -> datetime:
    if not isinstance(value, str) or len(value) > 64:
        raise _fail(where, "an ISO 8601 date and time", value)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise _fail(where, "an ISO 8601 date and time", value) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _sha256(where: str, value: object) -> str:
    try:
        return check_sha256(value)
    except InvalidValue:
        raise _fail(where, "a sha256 of 64 hex digits", value) from None


def _mime(where: str, value: object) -> str:
    try:
        return normalize_mime(value)
    except InvalidValue:
        raise _fail(where, "a media type like image/png", value) from None


def _choice(allowed: tuple[str, ...]) -> Check:
    def check(where: str, value: object) -> str:
        if not isinstance(value, str) or value not in allowed:
            raise _fail(where, f"one of {', '.join(allowed)}", value)
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
_SPECS = {spec.name: spec for spec in BACKUP_TABLES}
REFERENCED_TABLES = frozenset(column.ref for spec in BACKUP_TABLES for column in spec.columns if column.ref)


# -- reading a backup -----------------------------------------------------------------------------


@dataclass
class CheckedBackup:
    """A backup that passed every check: rows by table (messages parents first) and files by sha256."""

    rows: dict[str, list[dict[str, Any]]]
    files: dict[str, bytes]

    def counts(self) -> dict[str, int]:
        return {name: len(rows) for name, rows in self.rows.items()}


def read_backup(data: bytes, *, max_asset_bytes: int) -> CheckedBackup:
    """Parse and check a whole backup; a bad one raises BackupFormatError naming the problem."""
    return _check_document(_load(data), max_asset_bytes=max_asset_bytes)


def _load(data: bytes) -> dict[str, Any]:
    if not isinstance(data, bytes | bytearray):
        raise BackupFormatError("A backup must be given as bytes (the file's contents).")
    try:
        document = json.loads(bytes(data).decode("utf-8"), parse_constant=_reject_constant)
    except UnicodeDecodeError:
        raise BackupFormatError(
            "The backup is not UTF-8 text. Choose the .json file Kataribe wrote."
        ) from None
    except json.JSONDecodeError as exc:
        raise BackupFormatError(
            f"The backup is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})."
        ) from None
    except RecursionError:
        raise BackupFormatError("The backup nests JSON too deeply to be a Kataribe backup.") from None
    except ValueError as exc:  # NaN/Infinity, or an integer of thousands of digits
        raise BackupFormatError(f"The backup holds a number JSON cannot carry ({str(exc)[:80]}).") from None
    if not isinstance(document, dict):
        raise BackupFormatError("The backup must be a JSON object; this is not a Kataribe backup.")
    return document


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


def _check_document(document: dict[str, Any], *, max_asset_bytes: int) -> CheckedBackup:
    if document.get("format") != BACKUP_FORMAT:
        raise BackupFormatError(
            f"This is not a Kataribe backup ('format' must be \"{BACKUP_FORMAT}\"). "
            "Use a file made by Kataribe's backup export."
        )
    version = document.get("version")
    if version != BACKUP_VERSION or isinstance(version, bool):
        raise BackupFormatError(
            f"This backup has version {version!r:.20}; this Kataribe restores version {BACKUP_VERSION}. "
            "Update Kataribe, or export the backup again from this version."
        )
    unknown = sorted(set(document) - set(_SPECS) - set(_OWN_KEYS))
    if unknown:
        raise BackupFormatError(
            f"The backup has sections this Kataribe does not know: {', '.join(unknown)[:200]}. "
            "It was probably made by a newer version; update Kataribe to restore it."
        )
    missing = [spec.name for spec in BACKUP_TABLES if spec.name not in document]
    if missing:
        raise BackupFormatError(
            f"The backup lacks the sections {', '.join(missing)}; it is incomplete. Use the whole file."
        )
    rows = {spec.name: _check_rows(spec, document[spec.name]) for spec in BACKUP_TABLES}
    files = _check_files(document[Asset.__tablename__], rows[Asset.__tablename__], max_asset_bytes)
    _check_references(rows)
    _check_chat_trees(rows)
    return CheckedBackup(rows=rows, files=files)


def _check_rows(spec: TableSpec, raw: object) -> list[dict[str, Any]]:
    if not isinstance(raw, list):
        raise _fail(f"'{spec.name}'", "a list of rows", raw)
    allowed = {column.name for column in spec.columns} | ({"data"} if spec.name == "assets" else set())
    clean: list[dict[str, Any]] = []
    seen: dict[tuple[str, ...], set[tuple[object, ...]]] = {names: set() for names in spec.unique}
    for number, row in enumerate(raw):
        where = f"{spec.name}[{number}]"
        if not isinstance(row, dict):
            raise _fail(where, "a JSON object", row)
        extra = sorted(set(row) - allowed)
        if extra:
            raise BackupFormatError(
                f"{where} has fields this Kataribe does not know ({', '.join(extra)[:120]}); "
                "update Kataribe to restore this backup."
            )
        values: dict[str, Any] = {}
        for column in spec.columns:
            if column.name not in row:
                raise BackupFormatError(f"{where} lacks '{column.name}'; the backup is incomplete.")
            value = row[column.name]
            field = f"{where}.{column.name}"
            values[column.name] = None if value is None and column.nullable else column.check(field, value)
        for names, found in seen.items():
            key = tuple(values[name] for name in names)
            if key in found:
                raise BackupFormatError(f"{where} repeats {'/'.join(names)} {key!r:.80} of an earlier row.")
            found.add(key)
        clean.append(values)
    return clean


def _check_files(raw: list[Any], assets: list[dict[str, Any]], max_bytes: int) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for number, (row, asset) in enumerate(zip(raw, assets, strict=True)):
        where = f"assets[{number}]"
        encoded = row.get("data")
        if encoded is None:
            continue  # the file was already missing when the backup was made
        if not isinstance(encoded, str) or len(encoded) > (max_bytes // 3 + 1) * 4:
            raise BackupFormatError(
                f"{where}.data must be the file as base64 of at most {max_bytes:,} bytes."
            )
        try:
            blob = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise BackupFormatError(f"{where}.data is not valid base64.") from None
        sha = asset["sha256"]
        if hashlib.sha256(blob).hexdigest() != sha:
            raise BackupFormatError(
                f"{where}: the file's bytes do not match its sha256 {sha[:12]}…; the backup was changed "
                "or damaged. Use an untouched copy."
            )
        if asset["size"] != len(blob):
            raise BackupFormatError(f"{where}.size says {asset['size']} bytes but the file has {len(blob)}.")
        if asset["mime"] in _IMAGE_MIMES and sniff_mime(blob) != asset["mime"]:
            raise BackupFormatError(f"{where} claims to be {asset['mime']} but its bytes are not.")
        try:
            check_image_size(blob)
        except InvalidValue as exc:
            raise BackupFormatError(f"{where}: {exc.message}") from None
        files[sha] = blob
    return files


def _check_references(rows: dict[str, list[dict[str, Any]]]) -> None:
    keys = {spec.name: {row[spec.key] for row in rows[spec.name]} for spec in BACKUP_TABLES}
    for spec in BACKUP_TABLES:
        for column in spec.columns:
            if column.ref is None:
                continue
            targets = keys[column.ref]
            for number, row in enumerate(rows[spec.name]):
                value = row[column.name]
                if value is not None and value not in targets:
                    raise BackupFormatError(
                        f"{spec.name}[{number}].{column.name} points to {column.ref} {value!r:.80}, "
                        "which is not in the backup; the backup is damaged."
                    )


def _check_chat_trees(rows: dict[str, list[dict[str, Any]]]) -> None:
    """Rows that point at messages must stay inside one chat, and parents must form a tree."""
    chat_of = {message["id"]: message["chat_id"] for message in rows["messages"]}
    pairs: list[tuple[str, dict[str, Any], object, str]] = [
        *(("messages", m, m["chat_id"], "parent_id") for m in rows["messages"]),
        *(("chats", c, c["id"], "head_message_id") for c in rows["chats"]),
        *(("checkpoints", c, c["chat_id"], "message_id") for c in rows["checkpoints"]),
    ]
    for table, row, chat_id, column in pairs:
        target = row[column]
        if target is not None and chat_of[target] != chat_id:
            raise BackupFormatError(
                f"{table} row {row.get('id')!r:.40}: {column} {target} is a message of chat "
                f"{chat_of[target]}, not of chat {chat_id}; the backup is damaged."
            )
    ordered = _parents_first(rows["messages"])
    if len(ordered) != len(rows["messages"]):
        reached = {message["id"] for message in ordered}
        stuck = [m["id"] for m in rows["messages"] if m["id"] not in reached][:5]
        raise BackupFormatError(
            f"Messages {', '.join(map(str, stuck))} are their own ancestors (a parent_id loop); "
            "the backup is damaged."
        )
    rows["messages"] = ordered


def _parents_first(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every message after its parent, without recursion (chats can be thousands of levels deep)."""
    children: dict[object, list[dict[str, Any]]] = {}
    for message in messages:
        children.setdefault(message["parent_id"], []).append(message)
    ordered: list[dict[str, Any]] = []
    pending = list(reversed(children.get(None, [])))
    while pending:
        message = pending.pop()
        ordered.append(message)
        pending.extend(reversed(children.get(message["id"], [])))
    return ordered


def exported_value(value: object) -> object:
    """A column value as the document holds it (times as ISO 8601 with their UTC offset)."""
    return value.isoformat() if isinstance(value, datetime) else value
