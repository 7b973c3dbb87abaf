"""Reading a Kataribe backup: the document, its rows and files, and every check before a restore writes."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from kataribe.services.backup_tables import (
    BACKUP_FORMAT,
    BACKUP_TABLES,
    BACKUP_VERSION,
    REFERENCED_TABLES,
    SPECS,
    BackupFormatError,
    TableSpec,
    exported_value,
    refused_value,
)
from kataribe.store.assets import sniff_mime
from kataribe.store.errors import InvalidValue
from kataribe.store.images import check_image_size
from kataribe.store.models import Asset

__all__ = [
    "BACKUP_FORMAT",
    "BACKUP_TABLES",
    "BACKUP_VERSION",
    "REFERENCED_TABLES",
    "BackupFormatError",
    "CheckedBackup",
    "TableSpec",
    "exported_value",
    "read_backup",
]
_IMAGE_MIMES = ("image/png", "image/jpeg", "image/gif", "image/webp")
_OWN_KEYS = ("format", "version", "created_at")


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
    unknown = sorted(set(document) - set(SPECS) - set(_OWN_KEYS))
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
        raise refused_value(f"'{spec.name}'", "a list of rows", raw)
    allowed = {column.name for column in spec.columns} | ({"data"} if spec.name == "assets" else set())
    clean: list[dict[str, Any]] = []
    seen: dict[tuple[str, ...], set[tuple[object, ...]]] = {names: set() for names in spec.unique}
    for number, row in enumerate(raw):
        where = f"{spec.name}[{number}]"
        if not isinstance(row, dict):
            raise refused_value(where, "a JSON object", row)
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
