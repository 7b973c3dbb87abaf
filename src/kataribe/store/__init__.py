"""Persistence: SQLAlchemy models, Alembic migrations, content-addressed assets, repositories.

- ``db``: ``Database(url)`` (SQLite in WAL mode by default, PostgreSQL by URL), ``migrate()``,
  ``session()`` / ``read_session()``; ``sqlite_url(data_dir)``.
- ``models``: the typed ORM schema; ``migrations/`` ships the Alembic revisions inside the package.
- ``chats``: ``ChatRepository``, chats as message trees (append-only, branches, swipes, search).
- ``search``: user text to a safe FTS5 trigram query, or LIKE/ILIKE off SQLite.
- ``assets``: ``AssetStore``, files named by sha256 only.
- ``fields``, ``errors``: checks on outside values; ``NotFound`` (404), ``InvalidValue`` (400).
"""
