"""RoleplayContext: the database, asset store and engine that the role-play services share."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

from kataribe.engine.base import Engine
from kataribe.store.asset_collector import Collected, collect_after_releases, collect_assets
from kataribe.store.assets import AssetStore
from kataribe.store.db import Database, sqlite_url

TOKEN_CACHE_SIZE = 65_536
"""Token counts kept per (model, text): a 10,000-message chat is counted once, not every turn."""
PARSED_CACHE_SIZE = 64
"""Lorebooks and cards parsed from their stored JSON, kept between turns (a 10,000-entry book takes
about 0.4 s to parse: without this, every reply in a chat that uses it would wait for it)."""
_T = TypeVar("_T")


@dataclass
class RoleplayContext:
    db: Database
    assets: AssetStore
    engine: Engine
    _counts: OrderedDict[tuple[str, str], int] = field(default_factory=OrderedDict, repr=False)
    _parsed: OrderedDict[Hashable, Any] = field(default_factory=OrderedDict, repr=False)
    _parsed_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def open(cls, data_dir: Path, engine: Engine, database_url: str | None = None) -> RoleplayContext:
        """Open (and migrate) the data dir's database; assets live in ``data_dir/assets``."""
        db = Database(database_url or sqlite_url(data_dir))
        db.migrate()
        assets = AssetStore(data_dir / "assets")
        collect_after_releases(db, assets)
        return cls(db=db, assets=assets, engine=engine)

    def collect_assets(self) -> Collected:
        """At start, before any request: every unreferenced asset and stale temporary file goes
        (nothing can be in flight, so young files are not spared)."""
        return collect_assets(self.db, self.assets, young_s=0, whole_store=True)

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

    def parsed(self, key: Hashable, build: Callable[[], _T]) -> _T:
        """What ``build`` parses from a stored row, kept while ``key`` holds.

        The key must change whenever the stored data does (it carries the row's ``updated_at``), and
        callers must treat what they get as read-only: it is shared between turns and requests.
        """
        with self._parsed_lock:
            if key in self._parsed:
                self._parsed.move_to_end(key)
                return cast(_T, self._parsed[key])
        value = build()
        with self._parsed_lock:
            self._parsed[key] = value
            while len(self._parsed) > PARSED_CACHE_SIZE:
                self._parsed.popitem(last=False)
        return value

    def close(self) -> None:
        self.db.close()
