"""Libraries for tests that need no model: a RoleplayContext over a database and a data dir, and
small helpers to fill and count one. The ``ctx`` and ``empty`` fixtures (conftest) build on these."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import strategies as st
from sqlalchemy import func, select

from kataribe.services.characters import CharacterService
from kataribe.services.context import RoleplayContext
from kataribe.store.models import Base

# Any JSON value, for fuzzing importers with wrong types in every field.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=10,
)
TINY_PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00\x00\x00\x01" * 2 + bytes(range(32))
"""A PNG header declaring 1 x 1 pixels (sizes past the pixel cap are refused), then filler bytes."""


def open_library(path: Path, database_url: str | None = None) -> RoleplayContext:
    # Transfer and store code never touches the engine: no model is loaded for these libraries.
    return RoleplayContext.open(path, engine=None, database_url=database_url)  # type: ignore[arg-type]


def new_character(ctx: RoleplayContext, name: str) -> int:
    return int(CharacterService(ctx).create({"name": name})["id"])


def jsonl(*lines: dict[str, Any]) -> bytes:
    return "\n".join(json.dumps(line, ensure_ascii=False) for line in lines).encode("utf-8")


def row_count(ctx: RoleplayContext, model: type[Base]) -> int:
    with ctx.db.read_session() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)
