"""Inclusion groups: one winner per group by sticky, scoring, override, or weighted roll."""

from __future__ import annotations

import random
from collections import Counter

from kataribe.lore.engine import ActivationResult, ScanInput, SkipReason, activate_entries
from kataribe.lore.model import Lorebook, LoreEntry, WorldInfoSettings
from kataribe.lore.timed import LoreTimedState


def fire(
    entries: list[LoreEntry],
    text: str,
    *,
    seed: int = 0,
    settings: WorldInfoSettings | None = None,
    state: LoreTimedState | None = None,
    at: int = 1,
) -> ActivationResult:
    return activate_entries(
        [Lorebook(name="book", entries=entries)],
        ScanInput(messages=[text], turn=at),
        settings or WorldInfoSettings(),
        state=state or LoreTimedState(),
        count_tokens=lambda t: len(t.split()),
        max_context=10_000,
        rng=random.Random(seed),
    )


def winners(entries: list[LoreEntry], text: str, seeds: int = 200, **kwargs: object) -> Counter[int | str]:
    counts: Counter[int | str] = Counter()
    for seed in range(seeds):
        fired = [a.entry.uid for a in fire(entries, text, seed=seed, **kwargs).entries]  # type: ignore[arg-type]
        assert len(fired) == 1
        counts[fired[0]] += 1
    return counts


def test_only_one_entry_of_a_group_fires_and_the_others_are_reported() -> None:
    entries = [LoreEntry(uid=u, keys=["tavern"], group="weather") for u in (1, 2, 3)]
    result = fire(entries, "the tavern")
    assert len(result.entries) == 1
    assert sorted(s.entry.uid for s in result.skipped) == sorted({1, 2, 3} - {result.entries[0].entry.uid})
    assert {s.reason for s in result.skipped} == {SkipReason.GROUP}


def test_group_override_picks_the_highest_order_every_time() -> None:
    entries = [
        LoreEntry(uid="plain", keys=["tavern"], group="g", order=900),
        LoreEntry(uid="low", keys=["tavern"], group="g", order=10, group_override=True),
        LoreEntry(uid="high", keys=["tavern"], group="g", order=50, group_override=True),
    ]
    assert winners(entries, "tavern", seeds=30) == Counter({"high": 30})


def test_group_weight_sets_the_odds_of_the_roll() -> None:
    entries = [
        LoreEntry(uid="rare", keys=["tavern"], group="g", group_weight=25),
        LoreEntry(uid="common", keys=["tavern"], group="g", group_weight=75),
    ]
    counts = winners(entries, "tavern", seeds=400)
    assert 0.65 < counts["common"] / 400 < 0.85
    never = [LoreEntry(uid="zero", keys=["tavern"], group="g", group_weight=0), entries[1]]
    assert winners(never, "tavern", seeds=50) == Counter({"common": 50})


def test_the_same_seed_gives_the_same_winner() -> None:
    entries = [LoreEntry(uid=u, keys=["tavern"], group="g") for u in range(5)]
    assert [fire(entries, "tavern", seed=7).entries[0].entry.uid for _ in range(3)] == [
        fire(entries, "tavern", seed=7).entries[0].entry.uid
    ] * 3


def test_group_scoring_keeps_the_entry_matching_the_most_keys() -> None:
    entries = [
        LoreEntry(uid="one", keys=["castle"], group="g"),
        LoreEntry(uid="two", keys=["castle", "king"], group="g"),
    ]
    scored = WorldInfoSettings(use_group_scoring=True)
    assert winners(entries, "the castle king", seeds=40, settings=scored) == Counter({"two": 40})
    per_entry = [LoreEntry(uid=e.uid, keys=e.keys, group="g", use_group_scoring=True) for e in entries]
    assert winners(per_entry, "the castle king", seeds=40) == Counter({"two": 40})


def test_a_sticky_member_holds_its_group() -> None:
    entries = [
        LoreEntry(uid="held", keys=["rain"], group="g", sticky=5),
        LoreEntry(uid="other", keys=["tavern"], group="g", group_override=True, order=999),
    ]
    state = fire(entries, "rain", at=10).state
    result = fire(entries, "tavern", state=state, at=11)
    assert [a.entry.uid for a in result.entries] == ["held"]
    assert [s.entry.uid for s in result.skipped] == ["other"]


def test_an_entry_can_belong_to_several_groups() -> None:
    entries = [
        LoreEntry(uid="both", keys=["x"], group="a, b", group_override=True),
        LoreEntry(uid="a", keys=["x"], group="a"),
        LoreEntry(uid="b", keys=["x"], group="b"),
    ]
    assert winners(entries, "x", seeds=20) == Counter({"both": 20})


def test_a_group_filled_in_an_earlier_pass_takes_no_one_from_recursion() -> None:
    entries = [
        LoreEntry(uid="first", keys=["castle"], group="g", content="the king"),
        LoreEntry(uid="later", keys=["king"], group="g"),
    ]
    result = fire(entries, "the castle")
    assert [a.entry.uid for a in result.entries] == ["first"]
    assert [(s.entry.uid, s.reason) for s in result.skipped] == [("later", SkipReason.GROUP)]
    assert "already fired" in result.skipped[0].detail
