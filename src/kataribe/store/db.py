"""The database handle: engine and SQLite tuning, Alembic migrations shipped in the package, sessions."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session, sessionmaker

from kataribe.store.row_checks import install_row_checks

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
BUSY_TIMEOUT_MS = 5000
# Execution option read by the "begin" listener: how SQLite should start the transaction.
_SQLITE_BEGIN = "kataribe_sqlite_begin"


def sqlite_url(data_dir: Path | str) -> str:
    """The default database: ``kataribe.db`` in the data directory."""
    path = str(Path(data_dir).expanduser().resolve() / "kataribe.db")
    if "%" in path or "?" in path:
        # the URL parser reads '?' as the query and decodes %XX; only then is quoting needed
        return URL.create("sqlite", database=path).render_as_string(hide_password=False)
    return f"sqlite:///{path}"


def alembic_config(url: str | None = None, *, connection: Connection | None = None) -> Config:
    """An Alembic config for the migrations inside the package; no alembic.ini needed.

    Give ``connection`` to migrate through it, or ``url`` for offline SQL (``command.upgrade(cfg, "head",
    sql=True)`` prints the DDL for that dialect, e.g. ``postgresql://``).
    """
    cfg = Config()
    # configparser interpolates '%'; a path may contain one
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    if url is not None:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def _tune_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transactions away from pysqlite (it only BEGINs before DML and never before DDL or
        # SELECT), so SAVEPOINTs, consistent reads and transactional migrations work; see "begin".
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys = ON")
            # WAL: readers never block the writer nor wait for it; NORMAL is durable in WAL except
            # for the last transactions on power loss, and skips an fsync per commit.
            if cursor.execute("PRAGMA journal_mode").fetchone()[0] not in ("wal", "memory"):
                cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # A write session takes the write lock up front: a deferred transaction that reads first
        # and writes later fails at once (SQLITE_BUSY, no waiting) if another writer got in between.
        mode = conn.get_execution_options().get(_SQLITE_BEGIN, "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")


class Database:
    """One database by URL: SQLite file (default, tuned for one app process) or PostgreSQL.

    ``session()`` is for work that writes; ``read_session()`` for reads, which on SQLite run beside a
    writer without waiting. Objects stay usable after their session ends (no expiry on commit).
    """

    def __init__(self, url: str | URL, *, echo: bool = False) -> None:
        self.url = make_url(url)
        if self.dialect_name == "sqlite":
            _ensure_parent_dir(self.url)
        self.engine: Engine = create_engine(self.url, echo=echo)
        write_bind: Engine
        if self.dialect_name == "sqlite":
            _tune_sqlite(self.engine)
            write_bind = self.engine.execution_options(**{_SQLITE_BEGIN: "IMMEDIATE"})
        else:
            write_bind = self.engine
        self._write_sessions = sessionmaker(bind=write_bind, expire_on_commit=False)
        self._read_sessions = sessionmaker(bind=self.engine, expire_on_commit=False)
        install_row_checks(self)

    def on_write_sessions(self, name: str, listener: Callable[..., None]) -> None:
        """Listen to a session event (``before_flush``, ``after_commit``) of every write session."""
        event.listen(self._write_sessions, name, listener)

    @property
    def dialect_name(self) -> str:
        return self.url.get_backend_name()

    def migrate(self) -> None:
        """Bring the schema to the newest revision (creates everything on an empty database)."""
        with self.engine.connect() as conn:
            if self.dialect_name == "sqlite":
                # Two processes starting at once: the second waits here, then finds nothing to do.
                conn = conn.execution_options(**{_SQLITE_BEGIN: "IMMEDIATE"})
            command.upgrade(alembic_config(connection=conn), "head")

    def current_revision(self) -> str | None:
        from alembic.runtime.migration import MigrationContext

        with self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A unit of work: committed when the block ends, rolled back if it raises."""
        with self._write_sessions() as session, session.begin():
            yield session

    @contextmanager
    def read_session(self) -> Iterator[Session]:
        """A consistent read snapshot; anything written in it is rolled back."""
        with self._read_sessions() as session:
            try:
                yield session
            finally:
                session.rollback()

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def _ensure_parent_dir(url: URL) -> None:
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return
    Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
