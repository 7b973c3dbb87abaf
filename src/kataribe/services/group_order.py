"""Who speaks next in a group chat: SillyTavern's natural, list, manual and pooled strategies."""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum


class Strategy(StrEnum):
    NATURAL = "natural"
    LIST = "list"
    MANUAL = "manual"
    POOLED = "pooled"


@dataclass(frozen=True)
class Member:
    character_id: int
    name: str
    muted: bool = False
    talkativeness: float = 0.5


@dataclass(frozen=True)
class TurnContext:
    last_text: str
    """The newest message's text (mentions are looked up here)."""
    last_speaker: int | None
    """The character who wrote the newest message, or None when it was the user."""
    spoken_since_user: frozenset[int] = frozenset()
    """Characters who have replied since the user's last message (for pooled order)."""


def _mentioned(members: Sequence[Member], text: str) -> list[Member]:
    found: list[tuple[int, Member]] = []
    for m in members:
        # whole-word match for Latin names; plain substring for CJK names, which have no spaces
        pattern = rf"(?<!\w){re.escape(m.name)}(?!\w)" if m.name.isascii() else re.escape(m.name)
        hit = re.search(pattern, text, flags=re.IGNORECASE)
        if hit:
            found.append((hit.start(), m))
    return [m for _pos, m in sorted(found, key=lambda x: x[0])]


def choose_speakers(
    members: Sequence[Member],
    strategy: Strategy,
    turn: TurnContext,
    *,
    allow_self_responses: bool,
    rng: random.Random,
) -> list[int]:
    """Character ids that reply now, in order. Muted members never speak on their own."""
    active = [m for m in members if not m.muted]
    if not active or strategy is Strategy.MANUAL:
        return []

    def eligible(m: Member) -> bool:
        return allow_self_responses or m.character_id != turn.last_speaker or len(active) == 1

    if strategy is Strategy.LIST:
        return [m.character_id for m in active if eligible(m)]
    if strategy is Strategy.POOLED:
        pool = [m for m in active if m.character_id not in turn.spoken_since_user and eligible(m)]
        if not pool:
            pool = [m for m in active if eligible(m)] or active
        return [rng.choice(pool).character_id]
    # natural: mentioned characters first, then a talkativeness roll for each, else one at random
    chosen: list[int] = []
    for m in _mentioned(active, turn.last_text):
        if eligible(m) and m.character_id not in chosen:
            chosen.append(m.character_id)
    shuffled = list(active)
    rng.shuffle(shuffled)
    for m in shuffled:
        if m.character_id in chosen or not eligible(m):
            continue
        if rng.random() < max(0.0, min(1.0, m.talkativeness)):
            chosen.append(m.character_id)
    if not chosen:
        candidates = [m for m in active if eligible(m)] or active
        chosen.append(rng.choice(candidates).character_id)
    return chosen
