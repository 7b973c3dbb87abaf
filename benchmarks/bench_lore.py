"""World Info scan time: 1,000 and 10,000 entries against a 20-message chat at scan depth 4.

Entries have realistic keys (distinct names and places, one to four per entry, some with
secondary keys, one in a hundred with a regex key, a few constant entries) and 40 to 120 words
of content. The chat mentions two or three of them per message. Recursion is on, as by default.
The median of several runs is reported; the goal is under 50 ms for each size. The 10,000-entry
book is measured a second time as SillyTavern writes its entries: every entry carries ST's options
(character filter, triggers, ignoreBudget, match flags) mostly unset, one in fifty with a real
character filter or trigger list, one in a hundred also matching the character's description.
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from common import save
from kataribe.lore.engine import ScanInput, activate_entries
from kataribe.lore.model import Lorebook, LoreEntry, SelectiveLogic, WorldInfoSettings
from kataribe.lore.results import MatchSource
from kataribe.lore.timed import LoreTimedState

SIZES = (1_000, 10_000)
ROUNDS = 9
SCAN_DEPTH = 4
GOAL_MS = 50.0
# fmt: off
SYLLABLES = [
    "ka", "ta", "ri", "be", "mor", "el", "dra", "go", "lin", "thal", "ven", "os", "qua", "sil", "ur", "yen",
    "fa", "ne", "ro", "shi", "ga", "bu", "lo", "mi", "zar", "kel", "dun", "fen", "har", "ith", "jor", "lum",
    "nar", "pel", "ras", "tor", "vash", "wen", "xil",
]
FILLER = [
    "the", "road", "winds", "past", "old", "stones", "while", "rain", "gathers", "over", "the", "hills",
    "and", "someone", "hums", "a", "song", "about", "the", "harbour", "lights", "and", "the", "ships",
    "that", "never", "came", "back", "from", "the", "northern", "sea",
]
# fmt: on


def make_names(count: int, rng: random.Random) -> list[str]:
    """Distinct four-syllable names: as in real lorebooks, one key is rarely part of another."""
    names: set[str] = set()
    while len(names) < count:
        names.add("".join(rng.choice(SYLLABLES) for _ in range(4)).capitalize())
    return sorted(names)


def make_book(size: int, rng: random.Random) -> tuple[Lorebook, list[str]]:
    names = make_names(size * 2, rng)
    places = names[size:]
    entries = []
    for uid, name in enumerate(names[:size]):
        keys = [
            name,
            *(f"{place} {rng.choice(['Keep', 'River', 'Guild'])}" for place in rng.sample(places, 3)),
        ]
        keys = keys[: rng.randint(1, 4)]
        if uid % 100 == 0:
            keys.append(f"/{name}(?:'s)? (sword|ship)/i")
        entry = LoreEntry(
            uid=uid,
            comment=name,
            keys=keys,
            content=" ".join(rng.choice(FILLER) for _ in range(rng.randint(40, 120))),
            order=rng.randint(0, 200),
            constant=uid % 500 == 0,
        )
        if uid % 7 == 0:
            entry.secondary_keys = [rng.choice(FILLER), rng.choice(FILLER)]
            entry.selective_logic = rng.choice(list(SelectiveLogic))
        entries.append(entry)
    return Lorebook(name=f"bench-{size}", entries=entries), names[:size]


ST_OPTIONS = {
    "characterFilter": {"isExclude": False, "names": [], "tags": []},
    "triggers": [],
    "ignoreBudget": False,
    "matchPersonaDescription": False,
    "matchCharacterDescription": False,
    "matchCharacterPersonality": False,
    "matchCharacterDepthPrompt": False,
    "matchScenario": False,
    "matchCreatorNotes": False,
}


def with_st_options(book: Lorebook) -> Lorebook:
    for entry in book.entries:
        options = {**ST_OPTIONS, "characterFilter": dict(ST_OPTIONS["characterFilter"])}  # type: ignore[arg-type]
        if entry.uid % 50 == 0:
            options["characterFilter"]["names"] = ["Aki" if entry.uid % 100 else "Someone else"]
            options["triggers"] = ["normal", "swipe"]
        if entry.uid % 100 == 1:
            options["matchCharacterDescription"] = True
        entry.extensions = {**entry.extensions, **options}
    return book


def make_chat(names: list[str], rng: random.Random) -> list[str]:
    chat = []
    for i in range(20):
        words = [rng.choice(FILLER) for _ in range(rng.randint(30, 70))]
        for name in rng.sample(names, rng.randint(2, 3)):
            words.insert(rng.randrange(len(words)), name)
        chat.append(f"{'User' if i % 2 == 0 else 'Narrator'}: {' '.join(words)}.")
    return chat


def timed_scans(
    book: Lorebook, scan: ScanInput, settings: WorldInfoSettings, rounds: int = ROUNDS
) -> tuple[list[float], int]:
    """Milliseconds of ``rounds`` scans (after one warm-up scan, which also compiles the keys) and
    how many entries the last one activated."""
    times, activated = [], 0
    for round_ in range(rounds + 1):
        start = time.perf_counter()
        result = activate_entries(
            [book],
            scan,
            settings,
            state=LoreTimedState(),
            count_tokens=lambda text: len(text) // 4,
            max_context=32_768,
            rng=random.Random(round_),
        )
        elapsed = (time.perf_counter() - start) * 1000
        if round_:  # the first run is a warm-up and is not counted
            times.append(round(elapsed, 2))
        activated = len(result.entries)
    return times, activated


def measure(size: int, *, st_options: bool = False) -> dict[str, object]:
    rng = random.Random(size)
    book, names = make_book(size, rng)
    chat = make_chat(names, rng)
    settings = WorldInfoSettings(scan_depth=SCAN_DEPTH)
    scan = ScanInput(messages=chat, turn=len(chat))
    if st_options:
        book = with_st_options(book)
        description = f"Aki keeps a map of {names[1]} and {names[101]}."
        scan = ScanInput(
            messages=chat,
            turn=len(chat),
            character_name="Aki",
            match_text={MatchSource.CHARACTER_DESCRIPTION: description},
        )
    times, activated = timed_scans(book, scan, settings)
    return {
        "entries": size,
        "sillytavern_options": st_options,
        "runs_ms": times,
        "median_ms": round(statistics.median(times), 2),
        "activated": activated,
        "scanned_chars": sum(len(m) for m in chat[-SCAN_DEPTH:]),
    }


def main() -> None:
    results = [*(measure(size) for size in SIZES), measure(SIZES[-1], st_options=True)]
    save(
        "lore_scan",
        {
            "chat_messages": 20,
            "scan_depth": SCAN_DEPTH,
            "rounds": ROUNDS,
            "sizes": results,
            "median_ms": {
                f"{r['entries']}{' (SillyTavern options)' if r['sillytavern_options'] else ''}": r[
                    "median_ms"
                ]
                for r in results
            },
            "goal": f"< {GOAL_MS:.0f} ms per scan for each size",
        },
    )


if __name__ == "__main__":
    main()
