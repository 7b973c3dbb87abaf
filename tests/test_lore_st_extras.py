"""SillyTavern entry options kept in extensions: character filter, triggers, ignore budget, match sources."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from kataribe.engine.base import Capabilities, TokenCount
from kataribe.formats.lorebooks import import_character_book, import_lorebook
from kataribe.lore.engine import ActivationResult, ScanInput, SkipReason, activate_entries
from kataribe.lore.model import Lorebook, LoreEntry, WorldInfoSettings
from kataribe.lore.results import Generation, MatchSource
from kataribe.lore.timed import LoreTimedState
from kataribe.services.characters import CharacterService
from kataribe.services.chats import ChatService
from kataribe.services.context import RoleplayContext
from kataribe.services.groups import GroupService
from kataribe.services.lorebooks import LorebookService
from kataribe.services.personas import PersonaService


def words(text: str) -> int:
    return len(text.split())


def fire(
    entries: Sequence[LoreEntry] | Sequence[Lorebook],
    messages: Sequence[str] = ("hello there",),
    *,
    character: str | None = "Alice",
    tags: Sequence[str] = (),
    generation: Generation = Generation.NORMAL,
    match_text: Mapping[MatchSource, str] | None = None,
    max_context: int = 100_000,
    settings: WorldInfoSettings | None = None,
) -> ActivationResult:
    items = list(entries)
    books = items if items and isinstance(items[0], Lorebook) else [Lorebook(name="book", entries=items)]
    return activate_entries(
        books,  # type: ignore[arg-type]
        ScanInput(
            messages=list(messages),
            turn=len(messages),
            character_name=character,
            character_tags=list(tags),
            generation=generation,
            match_text=match_text or {},
        ),
        settings or WorldInfoSettings(),
        state=LoreTimedState(),
        count_tokens=words,
        max_context=max_context,
        rng=random.Random(0),
    )


def uids(result: ActivationResult) -> list[int | str]:
    return [a.entry.uid for a in result.entries]


def skips(result: ActivationResult) -> list[tuple[int | str, SkipReason]]:
    return [(s.entry.uid, s.reason) for s in result.skipped]


def only_for(names: Sequence[str] = (), tags: Sequence[str] = (), exclude: bool = False) -> LoreEntry:
    flt = {"isExclude": exclude, "names": list(names), "tags": list(tags)}
    return LoreEntry(uid=1, keys=["hello"], extensions={"characterFilter": flt})


# -- character filter ---------------------------------------------------------------------------


def test_character_filter_by_name_fires_only_for_the_named_character() -> None:
    entry = only_for(names=["Alice"])
    assert uids(fire([entry], character="Alice")) == [1]
    skipped = fire([entry], character="Bob")
    assert uids(skipped) == [] and skips(skipped) == [(1, SkipReason.CHARACTER_FILTER)]
    assert skipped.skipped[0].detail == "only for 'Alice'; 'Bob' is speaking"
    assert uids(fire([entry], character="alice")) == []  # names are compared exactly


def test_character_filter_by_tag_fires_only_for_a_character_with_the_tag() -> None:
    entry = only_for(tags=["fantasy", "elf"])
    assert uids(fire([entry], tags=["modern", "elf"])) == [1]
    skipped = fire([entry], tags=["modern"])
    assert skips(skipped) == [(1, SkipReason.CHARACTER_FILTER)]
    assert "has none of these tags" in skipped.skipped[0].detail


def test_character_filter_exclude_keeps_the_entry_from_the_listed_characters_and_tags() -> None:
    by_name = only_for(names=["Alice"], exclude=True)
    assert uids(fire([by_name], character="Alice")) == []
    assert uids(fire([by_name], character="Bob")) == [1]
    by_tag = only_for(tags=["villain"], exclude=True)
    skipped = fire([by_tag], character="Bob", tags=["villain"])
    assert skips(skipped) == [(1, SkipReason.CHARACTER_FILTER)]
    assert skipped.skipped[0].detail == "not for characters tagged 'villain'; 'Bob' is tagged 'villain'"
    assert uids(fire([by_tag], character="Bob", tags=["hero"])) == [1]


def test_character_filter_with_names_and_tags_needs_both_as_in_sillytavern() -> None:
    entry = only_for(names=["Alice"], tags=["elf"])
    assert uids(fire([entry], character="Alice", tags=["elf"])) == [1]
    assert uids(fire([entry], character="Alice", tags=[])) == []


def test_empty_character_filter_and_a_scan_without_a_character_do_not_filter() -> None:
    assert uids(fire([only_for()], character="Bob")) == [1]
    assert uids(fire([only_for(names=["Alice"])], character=None)) == [1]  # the lorebook test box


def test_filtered_entry_is_reported_only_when_it_would_have_fired() -> None:
    quiet = fire([only_for(names=["Alice"])], ["nothing relevant"], character="Bob")
    assert quiet.entries == [] and quiet.skipped == []
    constant = LoreEntry(uid=2, constant=True, extensions={"characterFilter": {"names": ["Alice"]}})
    assert skips(fire([constant], character="Bob")) == [(2, SkipReason.CHARACTER_FILTER)]


# -- generation triggers ------------------------------------------------------------------------


@pytest.mark.parametrize("generation", list(Generation))
def test_trigger_fires_on_its_generation_type_only(generation: Generation) -> None:
    entry = LoreEntry(uid=1, keys=["hello"], extensions={"triggers": [generation.value]})
    assert uids(fire([entry], generation=generation)) == [1]
    other = Generation.QUIET if generation is not Generation.QUIET else Generation.NORMAL
    skipped = fire([entry], generation=other)
    assert uids(skipped) == [] and skips(skipped) == [(1, SkipReason.TRIGGER)]
    assert skipped.skipped[0].detail == f"fires only on {generation.value}; this is {other.value}"


def test_empty_triggers_fire_on_every_generation_type() -> None:
    entry = LoreEntry(uid=1, keys=["hello"], extensions={"triggers": []})
    assert all(uids(fire([entry], generation=g)) == [1] for g in Generation)


def test_a_swipe_also_fires_entries_that_trigger_on_regenerate() -> None:
    entry = LoreEntry(uid=1, keys=["hello"], extensions={"triggers": ["regenerate"]})
    assert uids(fire([entry], generation=Generation.SWIPE)) == [1]
    assert uids(fire([entry], generation=Generation.NORMAL)) == []


# -- ignore budget ------------------------------------------------------------------------------


def test_ignore_budget_entry_fires_over_a_full_budget_and_still_counts_in_it() -> None:
    entries = [
        LoreEntry(uid="big", constant=True, order=300, content="w " * 20),
        LoreEntry(uid="over", constant=True, order=250, content="w " * 20),
        LoreEntry(uid="free", constant=True, order=200, content="w " * 10, extensions={"ignoreBudget": True}),
        LoreEntry(uid="late", constant=True, order=100, content="w"),
    ]
    result = fire(entries, max_context=100)  # budget: 25 tokens
    assert sorted(map(str, uids(result))) == ["big", "free"]
    assert result.tokens_used == 30
    assert skips(result) == [("over", SkipReason.BUDGET), ("late", SkipReason.BUDGET)]
    free = next(a for a in result.entries if a.entry.uid == "free")
    assert free.reason == "constant, over the budget (ignoreBudget)"


def test_ignore_budget_entry_also_passes_a_full_book_budget() -> None:
    def book(**extensions: object) -> Lorebook:
        first = LoreEntry(uid=1, constant=True, order=200, content="w " * 5)
        second = LoreEntry(uid=2, constant=True, order=100, content="w " * 5, extensions=dict(extensions))
        return Lorebook(name="small", token_budget=5, entries=[first, second])

    assert skips(fire([book()])) == [(2, SkipReason.BOOK_BUDGET)]
    assert sorted(uids(fire([book(ignore_budget=True)]))) == [1, 2]


# -- match sources ------------------------------------------------------------------------------

SOURCE_FIELDS = {
    MatchSource.PERSONA_DESCRIPTION: "matchPersonaDescription",
    MatchSource.CHARACTER_DESCRIPTION: "matchCharacterDescription",
    MatchSource.CHARACTER_PERSONALITY: "matchCharacterPersonality",
    MatchSource.CHARACTER_DEPTH_PROMPT: "matchCharacterDepthPrompt",
    MatchSource.SCENARIO: "matchScenario",
    MatchSource.CREATOR_NOTES: "matchCreatorNotes",
}
SOURCE_WORDS = {
    MatchSource.PERSONA_DESCRIPTION: "the persona's description",
    MatchSource.CHARACTER_DESCRIPTION: "the character's description",
    MatchSource.CHARACTER_PERSONALITY: "the character's personality",
    MatchSource.CHARACTER_DEPTH_PROMPT: "the character's note",
    MatchSource.SCENARIO: "the scenario",
    MatchSource.CREATOR_NOTES: "the creator's notes",
}


@pytest.mark.parametrize("source", list(MatchSource))
def test_match_source_lets_keys_match_that_text_and_the_reason_names_it(source: MatchSource) -> None:
    texts = {s: f"some {s.value} text" for s in MatchSource} | {source: "the Moon Castle stands"}
    asks = LoreEntry(uid=1, keys=["moon castle"], extensions={SOURCE_FIELDS[source]: True})
    others = LoreEntry(
        uid=2, keys=["moon castle"], extensions={f: True for s, f in SOURCE_FIELDS.items() if s is not source}
    )
    plain = LoreEntry(uid=3, keys=["moon castle"])
    result = fire([asks, others, plain], ["we walk on"], match_text=texts)
    assert uids(result) == [1]
    where = f"{SOURCE_WORDS[source]} ({SOURCE_FIELDS[source]})"
    assert result.entries[0].reason == f"key 'moon castle' in {where}"


def test_match_source_text_counts_for_secondary_keys_and_never_at_scan_depth_zero() -> None:
    entry = LoreEntry(uid=1, keys=["castle"], secondary_keys=["moon"], extensions={"matchScenario": True})
    scenario = {MatchSource.SCENARIO: "under the moon"}
    result = fire([entry], ["a castle"], match_text=scenario)
    assert uids(result) == [1]
    assert result.entries[0].reason == "key 'castle' in message 0, secondary key 'moon'"
    unscanned = fire([entry], ["a castle"], match_text=scenario, settings=WorldInfoSettings(scan_depth=0))
    assert uids(unscanned) == []


# -- both namings, as imported ------------------------------------------------------------------

ST_OPTIONS = {
    "characterFilter": {"isExclude": False, "names": ["Alice"], "tags": []},
    "triggers": ["normal", "continue"],
    "ignoreBudget": True,
    "matchScenario": True,
}
CARD_OPTIONS = {
    "character_filter": {"isExclude": False, "names": ["Alice"], "tags": []},
    "triggers": ["normal", "continue"],
    "ignore_budget": True,
    "match_scenario": True,
}


def st_world_book() -> Lorebook:
    entry = {"uid": 7, "key": ["moon castle"], "content": "w " * 40, "order": 100, **ST_OPTIONS}
    return import_lorebook(json.dumps({"entries": {"7": entry}}).encode(), "world.json")


def card_book() -> Lorebook:
    entry = {
        "id": 7,
        "keys": ["moon castle"],
        "content": "w " * 40,
        "insertion_order": 100,
        "enabled": True,
        "extensions": CARD_OPTIONS,
    }
    return import_character_book({"entries": [entry]}, name="card")


def api_written_book() -> Lorebook:
    """Written through the API with a card's names straight into the model's extensions."""
    entry = LoreEntry(uid=7, keys=["moon castle"], content="w " * 40, extensions=dict(CARD_OPTIONS))
    return Lorebook(name="api", entries=[entry])


@pytest.mark.parametrize("make", [st_world_book, card_book, api_written_book])
def test_options_act_under_either_naming(make: Any) -> None:
    book = make()
    scenario = {MatchSource.SCENARIO: "the Moon Castle"}
    fired = fire([book], ["hi"], match_text=scenario, max_context=100)  # 40 tokens, budget 25
    assert uids(fired) == [7]
    assert fired.entries[0].reason.endswith("in the scenario (matchScenario), over the budget (ignoreBudget)")
    assert skips(fire([book], ["hi"], match_text=scenario, character="Bob")) == [
        (7, SkipReason.CHARACTER_FILTER)
    ]
    swiped = fire([book], ["hi"], match_text=scenario, generation=Generation.SWIPE)
    assert skips(swiped) == [(7, SkipReason.TRIGGER)]
    assert uids(fire([book], ["hi"], match_text=scenario, generation=Generation.CONTINUE)) == [7]


# -- in a real chat -----------------------------------------------------------------------------


class CountingEngine:
    """Just enough of an engine for a dry run: a context size, a model name and word counts."""

    model_name = "words"

    def capabilities(self) -> Capabilities:
        return Capabilities("test", "words", 8192, None, True, False, False, True, False)

    def count_tokens(self, text: str) -> TokenCount:
        return TokenCount(len(text.split()), None)


@pytest.fixture
def library(tmp_path: Path) -> Iterator[RoleplayContext]:
    ctx = RoleplayContext.open(tmp_path, engine=CountingEngine())  # type: ignore[arg-type]
    yield ctx
    ctx.close()


def test_dry_run_applies_the_speaker_filter_match_sources_and_triggers(library: RoleplayContext) -> None:
    characters = CharacterService(library)
    alice = characters.create(
        {"name": "Alice", "scenario": "{{char}} guards the Moon Castle.", "tags": ["elf"]}
    )
    bob = characters.create({"name": "Bob", "first_mes": "Hi.", "tags": ["orc"]})
    PersonaService(library).create({"name": "Kai", "description": "{{user}} carries a silver flute."})
    world = {
        "entries": {
            "0": {"uid": 0, "key": ["moon castle"], "content": "The castle is old.", "matchScenario": True},
            "1": {
                "uid": 1,
                "key": ["silver flute"],
                "content": "The flute is cursed.",
                "matchPersonaDescription": True,
                "characterFilter": {"isExclude": False, "names": [], "tags": ["elf"]},
            },
            "2": {"uid": 2, "constant": True, "content": "Only on continue.", "triggers": ["continue"]},
        }
    }
    lorebooks = LorebookService(library)
    book = lorebooks.import_file(json.dumps(world).encode(), "Moon.json")
    lorebooks.update(book["id"], is_global=True)
    chats = ChatService(library)

    solo = chats.start(alice["id"])
    dry = chats.dry_run(solo["id"])
    fired = {e["uid"]: e["reason"] for e in dry["lore"]}
    assert fired == {
        0: "key 'moon castle' in the scenario (matchScenario)",
        1: "key 'silver flute' in the persona's description (matchPersonaDescription)",
    }
    assert dry["lore_skipped"] == [
        {"book": "Moon", "uid": 2, "reason": "trigger", "detail": "fires only on continue; this is normal"}
    ]
    assert 2 in {e["uid"] for e in chats.dry_run(solo["id"], generation=Generation.CONTINUE)["lore"]}

    group = GroupService(library, chats).create({"name": "Both", "members": [alice["id"], bob["id"]]})
    together = GroupService(library, chats).start_chat(group["id"])
    as_bob = chats.dry_run(together["id"], speaker_id=bob["id"])
    assert 1 not in {e["uid"] for e in as_bob["lore"]}
    assert {"book": "Moon", "uid": 1, "reason": "character_filter"} in [
        {k: s[k] for k in ("book", "uid", "reason")} for s in as_bob["lore_skipped"]
    ]
    assert 1 in {e["uid"] for e in chats.dry_run(together["id"], speaker_id=alice["id"])["lore"]}
