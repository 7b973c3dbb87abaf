"""What a World Info activation takes and gives back: the scan input and the result with reasons."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from kataribe.lore.model import LoreEntry, Position, Role
from kataribe.lore.timed import LoreTimedState


class Generation(StrEnum):
    """What kind of generation the scan is for (SillyTavern's trigger names for an entry's ``triggers``)."""

    NORMAL = "normal"
    CONTINUE = "continue"
    IMPERSONATE = "impersonate"
    SWIPE = "swipe"
    REGENERATE = "regenerate"
    QUIET = "quiet"


class MatchSource(StrEnum):
    """Text besides the chat that an entry may ask to have its keys matched against."""

    PERSONA_DESCRIPTION = "persona_description"
    CHARACTER_DESCRIPTION = "character_description"
    CHARACTER_PERSONALITY = "character_personality"
    CHARACTER_DEPTH_PROMPT = "character_depth_prompt"
    SCENARIO = "scenario"
    CREATOR_NOTES = "creator_notes"


@dataclass(frozen=True, slots=True)
class ScanInput:
    """What is scanned. ``messages`` are oldest first, newest last, already "Name: text" if names
    count. ``turn`` is the index of the message being generated (SillyTavern's chat length); the
    timers (sticky, cooldown, delay, ``@@activate_only_*``) count in it.

    ``character_name`` and ``character_tags`` are the speaking character's, for entries' character
    filters (``None``: no character, filters are not checked); ``generation`` is checked against
    entries' triggers; ``match_text`` holds the texts that entries may match besides the chat."""

    messages: list[str]
    turn: int
    extra_scan_text: list[str] = field(default_factory=list)
    character_name: str | None = None
    character_tags: list[str] = field(default_factory=list)
    generation: Generation = Generation.NORMAL
    match_text: Mapping[MatchSource, str] = field(default_factory=dict)


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
    CHARACTER_FILTER = "character_filter"
    TRIGGER = "trigger"
    REGEX_KEY = "regex_key"  # a key regex that was refused or ran out of time, and nothing else matched


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
