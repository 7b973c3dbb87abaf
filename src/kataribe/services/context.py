"""RoleplayContext: the database, asset store and engine that the role-play services share."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kataribe.engine.base import Engine
from kataribe.store.assets import AssetStore
from kataribe.store.db import Database, sqlite_url


@dataclass
class RoleplayContext:
    db: Database
    assets: AssetStore
    engine: Engine

    @classmethod
    def open(cls, data_dir: Path, engine: Engine, database_url: str | None = None) -> RoleplayContext:
        """Open (and migrate) the data dir's database; assets live in ``data_dir/assets``."""
        db = Database(database_url or sqlite_url(data_dir))
        db.migrate()
        return cls(db=db, assets=AssetStore(data_dir / "assets"), engine=engine)

    def count_tokens(self, text: str) -> int:
        return self.engine.count_tokens(text).count if text else 0

    def close(self) -> None:
        self.db.close()
