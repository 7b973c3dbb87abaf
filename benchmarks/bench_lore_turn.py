"""Lore's share of a chat turn with a 10,000-entry lorebook linked: the whole prompt plan (books
loaded, lore scanned, prompt assembled with real token counts) on the first turn, which parses the
book from the database, against the next turns, which reuse the parsed book.

The baseline is the same plan in the same process with the parsed-book cache bypassed (every turn
parses the book again, as before the cache). Ratio = uncached ÷ cached turn time; more is better.
"""

from __future__ import annotations

import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from bench_lore import make_book, make_chat, with_st_options
from common import THREADS, save
from kataribe.engine.default_model import default_model_path
from kataribe.engine.llamacpp import EmbeddedConfig, EmbeddedEngine
from kataribe.services.characters import CharacterService
from kataribe.services.chats import ChatService
from kataribe.services.context import RoleplayContext
from kataribe.services.lorebooks import LorebookService

ROUNDS = 5
ENTRIES = 10_000


def main() -> None:
    engine = EmbeddedEngine(EmbeddedConfig(model_path=default_model_path(), n_ctx=8192, n_threads=THREADS))
    with tempfile.TemporaryDirectory() as tmp:
        ctx = RoleplayContext.open(Path(tmp), engine)
        rng = random.Random(ENTRIES)
        book, names = make_book(ENTRIES, rng)
        book = with_st_options(book)
        chat_lines = make_chat(names, rng)
        stored = LorebookService(ctx).create("Big world", book.to_dict())
        hero = CharacterService(ctx).create({"name": "Aki", "description": "A cartographer."})
        chats = ChatService(ctx)
        chat = chats.start(hero["id"])
        LorebookService(ctx).link(stored["id"], chat_id=chat["id"])
        for line in chat_lines:
            chats.send(chat["id"], line, generate=False)

        def turn() -> float:
            start = time.perf_counter()
            chats.dry_run(chat["id"])
            return (time.perf_counter() - start) * 1000

        first = turn()  # parses the book (and warms the token-count cache)
        cached = [turn() for _ in range(ROUNDS)]
        uncached = []
        for _ in range(ROUNDS):
            ctx._parsed.clear()  # what every turn cost before the cache
            uncached.append(turn())
        ctx.close()
    engine.close()
    result = {
        "entries": ENTRIES,
        "chat_messages": len(chat_lines),
        "first_turn_ms": round(first, 1),
        "cached_turn_ms": [round(t, 1) for t in cached],
        "uncached_turn_ms": [round(t, 1) for t in uncached],
        "cached_median_ms": round(statistics.median(cached), 1),
        "uncached_median_ms": round(statistics.median(uncached), 1),
    }
    result["ratio_uncached_to_cached"] = round(result["uncached_median_ms"] / result["cached_median_ms"], 2)
    save("lore_turn", result)


if __name__ == "__main__":
    main()
