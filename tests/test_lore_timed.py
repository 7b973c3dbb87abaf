"""Timed effects across turns: sticky, cooldown, delay, regeneration, and the stored timer state."""

from __future__ import annotations

import json
import random

import pytest

from kataribe.lore.engine import ActivationResult, ScanInput, SkipReason, activate_entries
from kataribe.lore.model import Lorebook, LoreDataError, LoreEntry, WorldInfoSettings
from kataribe.lore.timed import LoreTimedState, TimedEffect


def turn(
    entry: LoreEntry, text: str, at: int, state: LoreTimedState | None = None, book: str = "book"
) -> ActivationResult:
    return activate_entries(
        [Lorebook(name=book, entries=[entry])],
        ScanInput(messages=[text], turn=at),
        WorldInfoSettings(),
        state=state or LoreTimedState(),
        count_tokens=lambda t: len(t.split()),
        max_context=10_000,
        rng=random.Random(0),
    )


def test_sticky_entry_stays_for_its_turns_without_its_key() -> None:
    entry = LoreEntry(uid=1, keys=["storm"], sticky=3)
    first = turn(entry, "a storm", 10)
    assert first.entries[0].reason.startswith("key 'storm'")
    second = turn(entry, "calm", 11, first.state)
    assert [a.reason for a in second.entries] == ["sticky (2 turns left)"]
    third = turn(entry, "calm", 12, second.state)
    assert [a.reason for a in third.entries] == ["sticky (1 turn left)"]
    assert turn(entry, "calm", 13, third.state).entries == []


def test_cooldown_blocks_the_entry_for_its_turns_after_firing() -> None:
    entry = LoreEntry(uid=1, keys=["storm"], cooldown=2)
    first = turn(entry, "storm", 10)
    blocked = turn(entry, "storm", 11, first.state)
    assert blocked.entries == []
    assert [(s.reason, s.detail) for s in blocked.skipped] == [
        (SkipReason.COOLDOWN, "cooldown (1 turn left)")
    ]
    assert turn(entry, "storm", 12, blocked.state).entries


def test_cooldown_starts_when_a_sticky_period_ends() -> None:
    entry = LoreEntry(uid=1, keys=["storm"], sticky=2, cooldown=2)
    state = turn(entry, "storm", 10).state
    sticky = turn(entry, "storm", 11, state)
    assert [a.reason for a in sticky.entries] == ["sticky (1 turn left)"]
    cooling = turn(entry, "storm", 12, sticky.state)
    assert cooling.entries == [] and cooling.skipped[0].reason is SkipReason.COOLDOWN
    still = turn(entry, "storm", 13, cooling.state)
    assert still.entries == []
    assert turn(entry, "storm", 14, still.state).entries


def test_delay_waits_until_the_chat_has_that_many_messages() -> None:
    entry = LoreEntry(uid=1, keys=["storm"], delay=5)
    early = turn(entry, "storm", 4)
    assert early.entries == [] and early.skipped[0].reason is SkipReason.DELAY
    assert turn(entry, "storm", 5).entries


def test_regenerating_the_same_turn_starts_the_timers_afresh() -> None:
    entry = LoreEntry(uid=1, keys=["storm"], sticky=3)
    state = turn(entry, "storm", 10).state
    assert turn(entry, "calm", 10, state).entries == []  # the swipe without the key: no sticky left over


def test_timers_of_a_book_not_in_this_call_are_kept_until_they_end() -> None:
    entry = LoreEntry(uid=1, keys=["storm"], sticky=5)
    state = turn(entry, "storm", 10, book="weather").state
    other = LoreEntry(uid=1, keys=["x"])
    assert turn(other, "calm", 12, state, book="other").state.sticky == state.sticky
    assert turn(other, "calm", 15, state, book="other").state.sticky == {}


def test_timers_are_keyed_by_book_and_uid() -> None:
    entry = LoreEntry(uid=7, keys=["storm"], sticky=3)
    state = turn(entry, "storm", 10, book="weather").state
    assert dict(state.sticky) == {("weather", "7"): TimedEffect(start=10, end=13)}
    assert turn(entry, "calm", 11, state, book="elsewhere").entries == []


def test_timer_state_round_trips_through_json() -> None:
    entry = LoreEntry(uid="storm", keys=["storm"], sticky=2, cooldown=4)
    state = turn(entry, "storm", 10).state
    later = turn(entry, "calm", 12, state).state  # sticky ended: a protected cooldown runs
    restored = LoreTimedState.from_dict(json.loads(json.dumps(later.to_dict())))
    assert restored == later
    assert restored.cooldown[("book", "storm")].protected


@pytest.mark.parametrize(
    "bad",
    [[], {"sticky": "x"}, {"sticky": [{"book": "b", "uid": "1", "start": "soon"}]}, {"cooldown": [1]}],
)
def test_malformed_timer_state_is_a_clear_error(bad: object) -> None:
    with pytest.raises(LoreDataError, match="lore timers are malformed"):
        LoreTimedState.from_dict(bad)
