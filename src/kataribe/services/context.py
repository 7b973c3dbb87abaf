"""RoleplayContext: the database, asset store and engine that the role-play services share."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

from kataribe.engine.base import Engine
from kataribe.store.assets import AssetStore
from kataribe.store.db import Database, sqlite_url

TOKEN_CACHE_SIZE = 65_536
"""Token counts kept per (model, text): a 10,000-message chat is counted once, not every turn."""


@dataclass
class RoleplayContext:
    db: Database
    assets: AssetStore
    engine: Engine
    _counts: OrderedDict[tuple[str, str], int] = field(default_factory=OrderedDict, repr=False)

    @classmethod
    def open(cls, data_dir: Path, engine: Engine, database_url: str | None = None) -> RoleplayContext:
        """Open (and migrate) the data dir's database; assets live in ``data_dir/assets``."""
        db = Database(database_url or sqlite_url(data_dir))
        db.migrate()
        return cls(db=db, assets=AssetStore(data_dir / "assets"), engine=engine)

    def count_tokens(self, text: str) -> int:
        """The loaded model's token count, remembered per model (a switch of model recounts)."""
        if not text:
            return 0
        key = (self.engine.model_name, text)
        found = self._counts.get(key)
        if found is not None:
            self._counts.move_to_end(key)
            return found
        count = self.engine.count_tokens(text).count
        self._counts[key] = count
        if len(self._counts) > TOKEN_CACHE_SIZE:
            self._counts.popitem(last=False)
        return count

    def close(self) -> None:
        self.db.close()
