"""Alembic environment: migrates the connection Database.migrate() hands over, or writes SQL offline."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from kataribe.store.models import Base

config = context.config
target_metadata = Base.metadata
# Made by raw SQL in the migrations (SQLite FTS5), not by the models: autogenerate must not drop them.
UNMODELLED_PREFIXES = ("messages_fts",)


def include_object(obj: object, name: str | None, type_: str, reflected: bool, _compare_to: object) -> bool:
    return not (type_ == "table" and reflected and (name or "").startswith(UNMODELLED_PREFIXES))


def run_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        render_as_batch=True,
        include_object=include_object,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    from kataribe.store.db import Database

    connection = config.attributes.get("connection")
    if connection is not None:
        migrate_through(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("Set sqlalchemy.url, or migrate with kataribe.store.db.Database(url).migrate().")
    database = Database(url)
    try:
        with database.engine.connect() as conn:
            migrate_through(conn)
    finally:
        database.close()


def migrate_through(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite can ALTER little; batch mode rebuilds tables for later revisions.
        render_as_batch=True,
        include_object=include_object,
        # SQLite does run DDL inside transactions (Database hands BEGIN to SQLite itself), so a
        # failed upgrade leaves the old schema intact instead of half a new one.
        transactional_ddl=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
