"""Group chat speaker selection."""

from __future__ import annotations

import random

from kataribe.services.group_order import Member, Strategy, TurnContext, choose_speakers

ALICE, BOB, CARA = (
    Member(1, "Alice", talkativeness=0.0),
    Member(2, "Bob", talkativeness=0.0),
    Member(3, "カラ", talkativeness=0.0),
)
MEMBERS = [ALICE, BOB, CARA]


def pick(
    strategy: Strategy,
    text: str,
    last: int | None = None,
    *,
    allow_self: bool = False,
    members: list[Member] = MEMBERS,
    spoken: frozenset[int] = frozenset(),
    seed: int = 1,
) -> list[int]:
    return choose_speakers(
        members,
        strategy,
        TurnContext(text, last, spoken),
        allow_self_responses=allow_self,
        rng=random.Random(seed),
    )


def test_natural_mentions_speak_in_order_of_mention() -> None:
    assert pick(Strategy.NATURAL, "Bob, what does カラ think? And Alice?") == [2, 3, 1]
    assert pick(Strategy.NATURAL, "Bobby is not Bob's name")[:1] == [2]


def test_natural_falls_back_to_one_random_member_and_respects_self_responses() -> None:
    chosen = pick(Strategy.NATURAL, "Hello everyone", last=None)
    assert len(chosen) == 1 and chosen[0] in (1, 2, 3)
    assert pick(Strategy.NATURAL, "I, Alice, agree", last=1) != [1]
    assert pick(Strategy.NATURAL, "I, Alice, agree", last=1, allow_self=True)[0] == 1


def test_talkativeness_one_always_speaks() -> None:
    chatty = [Member(1, "Alice", talkativeness=1.0), Member(2, "Bob", talkativeness=0.0)]
    for seed in range(10):
        assert 1 in pick(Strategy.NATURAL, "hi", members=chatty, seed=seed)


def test_list_manual_and_muted() -> None:
    assert pick(Strategy.LIST, "hi") == [1, 2, 3]
    assert pick(Strategy.LIST, "hi", last=2) == [1, 3]
    assert pick(Strategy.MANUAL, "Alice!") == []
    muted = [ALICE, Member(2, "Bob", muted=True), CARA]
    assert 2 not in pick(Strategy.NATURAL, "Bob?", members=muted)
    assert pick(Strategy.LIST, "x", members=muted) == [1, 3]


def test_pooled_gives_everyone_a_turn_before_repeating() -> None:
    spoken: set[int] = set()
    last = None
    for _ in range(3):
        (who,) = pick(Strategy.POOLED, "go on", last, spoken=frozenset(spoken), seed=len(spoken))
        assert who not in spoken
        spoken.add(who)
        last = who
    assert spoken == {1, 2, 3}
