"""World Info scan with hostile regex keys, against the same book without them, in one run.

The 1,000-entry book of bench_lore.py, scanned against its 20-message chat with a few KB of
"aaaa…" and blank lines added to the newest messages (text a catastrophic pattern chokes on).
The hostile book adds the five keys issue 8 names — ``/(.|\\s)*QQQ/``, ``/(a|aa)+$/``,
``/a*a*a*a*a*a*a*a*b/``, ``/(a{1,100}){1,100}$/``, ``/(a?){30}a{30}/`` — plus a lookahead key that
must run with a time limit. Before Kataribe ran keys on RE2 the first of them alone froze the
process for minutes; the goal is that the hostile book costs at most a few times the plain one
(a ratio measured in the same run, median of several scans).
"""

from __future__ import annotations

import random
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from bench_lore import SCAN_DEPTH, make_book, make_chat, timed_scans
from common import save
from kataribe.lore.engine import ScanInput
from kataribe.lore.model import Lorebook, LoreEntry, WorldInfoSettings

ROUNDS = 9
HOSTILE_KEYS = [
    r"/(.|\s)*QQQ/",
    r"/(a|aa)+$/",
    r"/a*a*a*a*a*a*a*a*b/",
    r"/(a{1,100}){1,100}$/",
    r"/(a?){30}a{30}/",
    r"/(?=(a+)+b)x/",
]
GOAL_RATIO = 5.0


def hostile(book: Lorebook) -> Lorebook:
    extra = [
        LoreEntry(uid=100_000 + i, comment=f"hostile {i}", keys=[key], content="never mind")
        for i, key in enumerate(HOSTILE_KEYS)
    ]
    return Lorebook(name=book.name + "-hostile", entries=[*book.entries, *extra])


def scan_ms(book: Lorebook, chat: list[str]) -> list[float]:
    scan = ScanInput(messages=chat, turn=len(chat))
    return timed_scans(book, scan, WorldInfoSettings(scan_depth=SCAN_DEPTH), ROUNDS)[0]


def main() -> None:
    rng = random.Random(1_000)
    book, names = make_book(1_000, rng)
    chat = make_chat(names, rng)
    chat = [*chat[:-2], *(m + " " + "a" * 3_000 + "\n\n" * 200 for m in chat[-2:])]
    plain = scan_ms(book, chat)
    bad = scan_ms(hostile(book), chat)
    ratio = statistics.median(bad) / statistics.median(plain)
    save(
        "lore_hostile",
        {
            "entries": len(book.entries),
            "hostile_keys": HOSTILE_KEYS,
            "scanned_chars": sum(len(m) for m in chat[-SCAN_DEPTH:]),
            "plain_runs_ms": plain,
            "hostile_runs_ms": bad,
            "plain_median_ms": statistics.median(plain),
            "hostile_median_ms": statistics.median(bad),
            "ratio": round(ratio, 2),
            "goal": f"hostile / plain <= {GOAL_RATIO}",
        },
    )


if __name__ == "__main__":
    main()
