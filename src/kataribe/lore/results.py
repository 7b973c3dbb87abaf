"""What a World Info activation takes and gives back: the scan input and the result with reasons."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from kataribe.lore.model import LoreEntry, Position, Role
from kataribe.lore.timed import LoreTimedState


@dataclass(frozen=True, slots=True)
class ScanInput:
    """What is scanned. ``messages`` are oldest first, newest last, already "Name: text" if names
    count. ``turn`` is the index of the message being generated (SillyTavern's chat length); the
    timers (sticky, cooldown, delay, ``@@activate_only_*``) count in it."""

    messages: list[str]
    turn: int
    extra_scan_text: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ActivatedEntry:
    book: str
    entry: LoreEntry
    content: str  # without decorator lines
    position: Position
    depth: int
    role: Role
    order: int
    reason: str


class SkipReason(StrEnum):
    BUDGET = "budget"
    BOOK_BUDGET = "book_budget"
    PROBABILITY = "probability"
    GROUP = "group"
    COOLDOWN = "cooldown"
    DELAY = "delay"


@dataclass(frozen=True, slots=True)
class SkippedEntry:
    """An entry that matched (or would have) but was left out, and why."""

    book: str
    entry: LoreEntry
    reason: SkipReason
    detail: str


@dataclass(frozen=True, slots=True)
class ActivationResult:
    entries: list[ActivatedEntry]  # in insertion order: within a position, lower order first
    skipped: list[SkippedEntry]
    state: LoreTimedState
    tokens_used: int
    budget: int
