"""Message search: user text to a safe FTS5 trigram query on SQLite, to LIKE/ILIKE elsewhere."""

from __future__ import annotations

import re

from sqlalchemy import ColumnElement, Select, and_, bindparam, column, literal_column, or_, select, table

from kataribe.store.fields import checked_text
from kataribe.store.models import Chat, Message

MAX_QUERY_CHARS = 1_000
MAX_TERMS = 16
# The trigram index only answers for three characters or more; shorter terms are filtered by LIKE.
TRIGRAM = 3

_TERM = re.compile(r'"([^"]+)"|([^\s"]+)')
_fts = table("messages_fts", column("rowid"))


def parse_terms(query: str) -> list[str]:
    """Words, and "quoted phrases" as one term; every term is a plain substring to look for."""
    text = checked_text("query", query, max_chars=MAX_QUERY_CHARS)
    terms = [quoted or bare for quoted, bare in _TERM.findall(text)]
    return [t for t in (term.strip() for term in terms) if t][:MAX_TERMS]


def fts_phrase(term: str) -> str:
    # Inside an FTS5 string every character is literal except '"', written twice: no user text can
    # become an operator (AND, NEAR, *, ^, column filters) or a syntax error.
    return '"' + term.replace('"', '""') + '"'


def search_statement(
    terms: list[str],
    *,
    dialect_name: str,
    has_fts: bool,
    character_id: int | None = None,
    chat_id: int | None = None,
    limit: int = 50,
) -> Select[Message]:
    """Messages containing every term, newest first. ``terms`` must not be empty."""
    conditions: list[ColumnElement[bool]] = []
    long_terms = [t for t in terms if len(t) >= TRIGRAM] if has_fts else []
    if long_terms:
        match = literal_column("messages_fts").op("MATCH")(
            bindparam("fts_query", " AND ".join(fts_phrase(t) for t in long_terms))
        )
        conditions.append(Message.id.in_(select(_fts.c.rowid).where(match)))
    for term in terms:
        if term in long_terms:
            continue
        if dialect_name == "sqlite":
            # SQLite's LIKE already ignores ASCII case; ILIKE would wrap both sides in lower().
            conditions.append(Message.content.contains(term, autoescape=True))
        else:
            conditions.append(Message.content.icontains(term, autoescape=True))
    if chat_id is not None:
        conditions.append(Message.chat_id == chat_id)
    if character_id is not None:
        # The character's own chats, and what it said in group chats.
        conditions.append(
            or_(
                Message.character_id == character_id,
                Message.chat_id.in_(select(Chat.id).where(Chat.character_id == character_id)),
            )
        )
    return select(Message).where(and_(*conditions)).order_by(Message.id.desc()).limit(limit)
