"""SillyTavern entry options kept in an entry's extensions: character filter, generation triggers,
ignore budget and extra match sources, read under either naming, and whether an entry may fire."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kataribe.lore.model import LoreEntry
from kataribe.lore.results import Generation, MatchSource, ScanInput, SkipReason

# Each option's name in a SillyTavern world file, then in a Character Card book's extensions.
# Importers store both under SillyTavern's name; the card name is read too, for entries written
# through the API with a card's names.
_FILTER = ("characterFilter", "character_filter")
_TRIGGERS = ("triggers",)
_IGNORE_BUDGET = ("ignoreBudget", "ignore_budget")
MATCH_FIELDS: dict[MatchSource, tuple[str, str]] = {  # in SillyTavern's order of appending
    MatchSource.PERSONA_DESCRIPTION: ("matchPersonaDescription", "match_persona_description"),
    MatchSource.CHARACTER_DESCRIPTION: ("matchCharacterDescription", "match_character_description"),
    MatchSource.CHARACTER_PERSONALITY: ("matchCharacterPersonality", "match_character_personality"),
    MatchSource.CHARACTER_DEPTH_PROMPT: ("matchCharacterDepthPrompt", "match_character_depth_prompt"),
    MatchSource.SCENARIO: ("matchScenario", "match_scenario"),
    MatchSource.CREATOR_NOTES: ("matchCreatorNotes", "match_creator_notes"),
}
SOURCE_LABELS: dict[MatchSource, str] = {
    MatchSource.PERSONA_DESCRIPTION: "the persona's description",
    MatchSource.CHARACTER_DESCRIPTION: "the character's description",
    MatchSource.CHARACTER_PERSONALITY: "the character's personality",
    MatchSource.CHARACTER_DEPTH_PROMPT: "the character's note",
    MatchSource.SCENARIO: "the scenario",
    MatchSource.CREATOR_NOTES: "the creator's notes",
}
# SillyTavern writes every option into every entry, mostly unset: these let such entries through fast
_UNSET_WHEN_FALSY = (
    *_TRIGGERS,
    *_IGNORE_BUDGET,
    *(name for names in MATCH_FIELDS.values() for name in names),
)
# a trigger that also lets an entry fire: Kataribe's regenerate is a new swipe
_ALSO_ACCEPTED = {Generation.SWIPE: Generation.REGENERATE}


@dataclass(frozen=True, slots=True)
class CharacterFilter:
    """Names and tags of the characters an entry is for (or, with ``exclude``, is not for)."""

    names: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    exclude: bool = False


@dataclass(frozen=True, slots=True)
class EntryOptions:
    character_filter: CharacterFilter = CharacterFilter()
    triggers: tuple[str, ...] = ()  # empty: every kind of generation
    ignore_budget: bool = False
    match_sources: tuple[MatchSource, ...] = ()

    @property
    def gated(self) -> bool:
        """Whether the entry may be kept from firing by who speaks or by the kind of generation."""
        return bool(self.triggers or self.character_filter.names or self.character_filter.tags)


NO_OPTIONS = EntryOptions()


def entry_options(entry: LoreEntry) -> EntryOptions:
    """The entry's options; values of the wrong type count as unset, as SillyTavern reads them."""
    ext = entry.extensions
    if not ext:
        return NO_OPTIONS
    raw_filter = ext.get(_FILTER[0], ext.get(_FILTER[1]))
    filtering = isinstance(raw_filter, dict) and bool(raw_filter.get("names") or raw_filter.get("tags"))
    if not filtering and not any(map(ext.get, _UNSET_WHEN_FALSY)):
        return NO_OPTIONS
    character_filter = CharacterFilter()
    if isinstance(raw_filter, dict):
        exclude = raw_filter.get("isExclude", raw_filter.get("is_exclude")) is True
        names, tags = _texts(raw_filter.get("names")), _texts(raw_filter.get("tags"))
        character_filter = CharacterFilter(names=names, tags=tags, exclude=exclude)
    options = EntryOptions(
        character_filter=character_filter,
        triggers=_texts(_first(ext, _TRIGGERS)),
        ignore_budget=_first(ext, _IGNORE_BUDGET) is True,
        match_sources=tuple(s for s, names in MATCH_FIELDS.items() if _first(ext, names) is True),
    )
    return NO_OPTIONS if options == NO_OPTIONS else options


def blocked_by(options: EntryOptions, scan: ScanInput) -> tuple[SkipReason, str] | None:
    """Why the entry may not fire in this generation at all, or None.

    As in SillyTavern: the triggers first, then the names, then the tags; a filter with both
    names and tags needs both to pass. Names and tags are compared exactly.
    """
    if options.triggers:
        accepted = (scan.generation, _ALSO_ACCEPTED.get(scan.generation))
        if not any(a in options.triggers for a in accepted if a is not None):
            listed = ", ".join(options.triggers)
            return SkipReason.TRIGGER, f"fires only on {listed}; this is {scan.generation}"
    name = scan.character_name
    if name is None:
        return None
    rule = options.character_filter
    if rule.names and (name in rule.names) == rule.exclude:
        wanted = f"not for {_quoted(rule.names)}" if rule.exclude else f"only for {_quoted(rule.names)}"
        return SkipReason.CHARACTER_FILTER, f"{wanted}; '{name}' is speaking"
    if rule.tags:
        tagged = next((t for t in scan.character_tags if t in rule.tags), None)
        if (tagged is not None) == rule.exclude:
            if rule.exclude:
                detail = f"not for characters tagged {_quoted(rule.tags)}; '{name}' is tagged '{tagged}'"
            else:
                detail = f"only for characters tagged {_quoted(rule.tags)}; '{name}' has none of these tags"
            return SkipReason.CHARACTER_FILTER, detail
    return None


def _first(ext: dict[str, Any], names: Sequence[str]) -> Any:
    for name in names:
        if name in ext:
            return ext[name]
    return None


def _texts(value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(str(v) for v in value if isinstance(v, str | int) and not isinstance(v, bool) and str(v))


def _quoted(items: Sequence[str]) -> str:
    return ", ".join(f"'{i}'" for i in items)
