"""Chat store speed on a 10,000-message chat: open and read the last 50 messages; append one.

The chat is one branch of realistic turns (short user lines, longer replies; a third in Japanese),
written through ChatRepository into a fresh SQLite file (WAL, FTS5 trigram index on). Then, each
a median of several runs:

- open + last 50: a new Database (engine, first connection, pragmas) and read session, the active
  path's last 50 messages, close — what showing a chat costs;
- the same with ``migrate()`` first (the up-to-date check a process does once at start);
- append: one message in a write session on an open Database, committed.

Goal: open + last 50 and append each under 50 ms.
"""

from __future__ import annotations

import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from common import save
from kataribe.store.chats import ChatRepository
from kataribe.store.db import Database, sqlite_url

MESSAGES = 10_000
RUNS = 15
GOAL_MS = 50.0

EN_TEXT = (
    "the lantern flickered as she stepped into the hall of the old lighthouse keeper and listened to "
    "waves crashing against the rocks below while the wind carried salt and memories of a storm"
)
EN_WORDS = EN_TEXT.split()
JA_PHRASES = (
    "灯台の階段をゆっくりと上った。",
    "波の音が遠くから聞こえてくる。",
    "彼女は小さく笑って、窓の外を見た。",
    "「今夜は嵐になりそうですね」と語り部は言った。",
    "古い地図には、誰も知らない島が描かれていた。",
    "ランプの灯りが揺れている。",
)


def turn_text(rng: random.Random, role: str) -> str:
    # Replies run 300-1,500 characters, user lines 40-300: the shape of a long role-play chat.
    low, high = (300, 1500) if role == "assistant" else (40, 300)
    target = rng.randint(low, high)
    parts: list[str] = []
    size = 0
    japanese = rng.random() < 0.33
    while size < target:
        piece = rng.choice(JA_PHRASES) if japanese else " ".join(rng.choices(EN_WORDS, k=8)) + ". "
        parts.append(piece)
        size += len(piece)
    return "".join(parts)


def build_chat(db: Database) -> int:
    rng = random.Random(7)
    with db.session() as session:
        chat_id = ChatRepository(session).create_chat(title="benchmark").id
    for start in range(0, MESSAGES, 1000):
        with db.session() as session:
            repo = ChatRepository(session)
            for i in range(start, start + 1000):
                role = "user" if i % 2 == 0 else "assistant"
                repo.append_message(chat_id, role, turn_text(rng, role), name=role.title(), meta={"i": i})
    return chat_id


def median_ms(run: Callable[[], object], runs: int = RUNS) -> tuple[float, list[float]]:
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        run()
        samples.append((time.perf_counter() - t0) * 1000)
    return statistics.median(samples), samples


def main() -> None:
    with tempfile.TemporaryDirectory() as data:
        url = sqlite_url(Path(data))
        with Database(url) as db:
            db.migrate()
            t0 = time.perf_counter()
            chat_id = build_chat(db)
            build_s = time.perf_counter() - t0

        def open_and_read_last_50(migrate: bool = False) -> None:
            with Database(url) as fresh:
                if migrate:
                    fresh.migrate()
                with fresh.read_session() as session:
                    path = ChatRepository(session).active_path(chat_id, limit=50)
            assert len(path) == 50

        open_read_ms, open_read = median_ms(open_and_read_last_50)
        open_migrate_ms, _ = median_ms(lambda: open_and_read_last_50(migrate=True))

        rng = random.Random(11)
        with Database(url) as db:

            def append_one() -> None:
                with db.session() as session:
                    ChatRepository(session).append_message(chat_id, "user", turn_text(rng, "user"))

            append_ms, appends = median_ms(append_one)
            with db.read_session() as session:
                repo = ChatRepository(session)
                count_ms, _ = median_ms(lambda: repo.count_path(chat_id), runs=5)
                search_ms, _ = median_ms(lambda: repo.search_messages("語り部", limit=50), runs=5)
                assert repo.count_path(chat_id) == MESSAGES + RUNS
        db_bytes = sum(p.stat().st_size for p in Path(data).iterdir())

    save(
        "chat_store",
        {
            "messages": MESSAGES,
            "runs": RUNS,
            "build_s": round(build_s, 2),
            "database_mib": round(db_bytes / 2**20, 1),
            "open_read_last_50_ms": round(open_read_ms, 2),
            "open_read_last_50_max_ms": round(max(open_read), 2),
            "open_migrate_read_last_50_ms": round(open_migrate_ms, 2),
            "append_ms": round(append_ms, 2),
            "append_max_ms": round(max(appends), 2),
            "count_path_10k_ms": round(count_ms, 2),
            "search_fts_trigram_ms": round(search_ms, 2),
            "goal_ms": GOAL_MS,
            "goal_met": open_read_ms < GOAL_MS and append_ms < GOAL_MS,
        },
    )


if __name__ == "__main__":
    main()
