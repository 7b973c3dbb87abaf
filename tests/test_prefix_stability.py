"""Prefix stability over a long chat: lore firing and history overflowing must not break the prefix
on most turns, so the engine evaluates only the new tokens."""

from __future__ import annotations

import random
from pathlib import Path

from kataribe.engine.kvcache import common_prefix_len
from kataribe.engine.llamacpp import EmbeddedEngine
from kataribe.formats.lorebooks import import_lorebook
from kataribe.prompt.assemble import Budget, HistoryItem
from kataribe.prompt.chat import CharacterSheet, ChatPromptSettings, ChatTurnInput, build_chat_prompt

TURNS = 50
STABLE_SHARE = 0.9


def stable_share(
    engine: EmbeddedEngine, fixtures_dir: Path, settings: ChatPromptSettings
) -> tuple[float, int, int]:
    book = import_lorebook((fixtures_dir / "sillytavern" / "Eldoria.json").read_bytes(), "Eldoria.json")
    keys = [e.keys[0] for e in book.entries if e.keys and not e.constant]
    sheet = CharacterSheet(
        name="Seraphina",
        description="A guardian of the Eldoria forest. " * 10,
        personality="kind, protective",
        scenario="The forest at dusk.",
    )
    history: list[HistoryItem] = []
    state = None
    anchor = None
    previous: list[int] | None = None
    stable = fired_turns = overflow_turns = 0
    rng = random.Random(5)
    for turn in range(TURNS):
        key = keys[(turn // 6) % len(keys)]  # the talk moves to another topic every few turns
        history.append(
            HistoryItem(
                "user", f"Turn {turn}: tell me about the {key}. " + "I walk on. " * 25, "Kai", 2 * turn
            )
        )
        turn_input = ChatTurnInput(
            speaker=sheet,
            user_name="Kai",
            history=list(history),
            chat_id="s",
            books=[book],
            lore_anchor=anchor,
            **({"lore_state": state} if state else {}),
        )
        out = build_chat_prompt(
            turn_input,
            settings,
            Budget(max_context=8192, reply_reserve=300),
            lambda t: len(engine.tokenize(t)),
            rng=rng,
        )
        state = out.lore.state
        anchor = out.lore_anchor
        fired_turns += bool(out.lore.entries)
        overflow_turns += out.prompt.history_dropped > 0
        tokens = engine.tokenize(engine.render_chat(out.prompt.messages), special=True)
        if previous is not None and common_prefix_len(previous, tokens) >= STABLE_SHARE * len(previous):
            stable += 1
        previous = tokens
        history.append(
            HistoryItem(
                "assistant", f"Reply {turn}: the {key} is near. " + "Leaves rustle. " * 30, "Seraphina"
            )
        )
    return stable / (TURNS - 1), fired_turns, overflow_turns


def test_cache_friendly_layout_keeps_the_prefix_on_most_turns(
    engine: EmbeddedEngine, fixtures_dir: Path
) -> None:
    share, fired, overflowed = stable_share(engine, fixtures_dir, ChatPromptSettings())
    print(
        f"\nprefix stability (cache-friendly): {share:.0%} of turns keep >= 90% of the previous prompt; "
        f"lore fired on {fired}/{TURNS} turns, history overflowed on {overflowed}/{TURNS}"
    )
    assert fired >= TURNS // 2 and overflowed >= TURNS // 3  # the test exercises both
    assert share >= 0.85


def test_sillytavern_positions_break_the_prefix_more_often(
    engine: EmbeddedEngine, fixtures_dir: Path
) -> None:
    friendly, _, _ = stable_share(engine, fixtures_dir, ChatPromptSettings())
    exact, _, _ = stable_share(engine, fixtures_dir, ChatPromptSettings(cache_friendly_lore=False))
    print(f"\nprefix stability: cache-friendly {friendly:.0%} vs SillyTavern positions {exact:.0%}")
    assert friendly > exact
