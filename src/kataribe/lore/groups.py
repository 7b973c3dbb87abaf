"""Inclusion groups: at most one entry of a group fires, chosen as SillyTavern chooses."""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol, TypeVar

from kataribe.lore.model import LoreEntry

_GROUP_SEPARATOR = re.compile(r",\s*")


class GroupMember(Protocol):
    @property
    def entry(self) -> LoreEntry: ...

    @property
    def groups(self) -> tuple[str, ...]: ...


M = TypeVar("M", bound=GroupMember)


def group_names(group: str) -> tuple[str, ...]:
    """An entry's groups: its ``group`` field split on commas, as SillyTavern splits it."""
    return tuple(dict.fromkeys(name.strip() for name in _GROUP_SEPARATOR.split(group) if name.strip()))


def filter_inclusion_groups(
    candidates: Sequence[M],
    already_active: Iterable[M],
    *,
    is_sticky: Callable[[M], bool],
    score: Callable[[M], int],
    scoring_by_default: bool,
    rng: random.Random,
) -> tuple[list[M], list[tuple[M, str]]]:
    """Keeps one winner per group among ``candidates``; returns the kept ones and the losers.

    In SillyTavern's order: sticky members win their group outright; with group scoring, members
    matching fewer keys than the best drop out; a group that already fired in an earlier pass
    takes no one; then the highest-order member with "group override" wins, or else a roll
    weighted by ``group_weight``.
    """
    grouped: dict[str, list[M]] = {}
    for member in candidates:
        for name in member.groups:
            grouped.setdefault(name, []).append(member)
    if not grouped:
        return list(candidates), []
    removed: dict[int, str] = {}  # id(member) -> why it lost

    def remove(member: M, why: str) -> None:
        removed.setdefault(id(member), why)

    sticky_groups = set()
    for name, members in grouped.items():
        stickies = [m for m in members if is_sticky(m)]
        if stickies:
            sticky_groups.add(name)
            for member in members:
                if member not in stickies:
                    remove(member, f"inclusion group '{name}': sticky '{stickies[0].entry.label}' holds it")

    for name, members in grouped.items():
        uses_scoring = [_scored(m.entry, scoring_by_default) for m in members]
        if name in sticky_groups or not any(uses_scoring):
            continue
        scores = [score(m) for m in members]
        best = max(scores)
        for member, member_score, scored in zip(members, scores, uses_scoring, strict=True):
            if scored and member_score < best:
                remove(
                    member, f"inclusion group '{name}': matched {member_score} keys, another matched {best}"
                )
        grouped[name] = [m for m in members if id(m) not in removed]

    active_groups = {name for member in already_active for name in member.groups}
    for name, members in grouped.items():
        if name in sticky_groups:
            continue
        open_members = [m for m in members if id(m) not in removed]
        if name in active_groups:
            for member in open_members:
                remove(member, f"inclusion group '{name}' already fired this turn")
            continue
        if len(open_members) <= 1:
            continue
        winner = _pick(open_members, rng)
        for member in open_members:
            if member is not winner:
                remove(member, f"inclusion group '{name}': '{winner.entry.label}' won")

    kept = [m for m in candidates if id(m) not in removed]
    losers = [(m, removed[id(m)]) for m in candidates if id(m) in removed]
    return kept, losers


def _scored(entry: LoreEntry, default: bool) -> bool:
    return default if entry.use_group_scoring is None else entry.use_group_scoring


def _pick(members: list[M], rng: random.Random) -> M:
    overriding = [m for m in members if m.entry.group_override]
    if overriding:
        return max(overriding, key=lambda m: m.entry.order)  # max() keeps the first of equals, as ST's sort
    weights = [max(0, m.entry.group_weight) for m in members]
    roll = rng.random() * sum(weights)
    running = 0
    for member, weight in zip(members, weights, strict=True):
        running += weight
        if roll <= running:
            return member
    return members[-1]
