"""Property-based fuzzing: hostile lorebook files and random entries never break anything."""

from __future__ import annotations

import json
import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from kataribe.formats.lorebooks import (
    LorebookFormatError,
    import_lorebook,
    to_character_book,
    to_lorebook_v3,
    to_novelai,
    to_risu,
    to_st_world,
)
from kataribe.lore.engine import ScanInput, activate_entries
from kataribe.lore.model import Lorebook, LoreEntry, Position, SelectiveLogic, WorldInfoSettings
from kataribe.lore.results import Generation, MatchSource
from kataribe.lore.timed import LoreTimedState

ENTRY_KEYS = [
    # SillyTavern World Info
    "uid", "key", "keysecondary", "comment", "content", "constant", "selective", "selectiveLogic", "order",
    "position", "depth", "role", "probability", "useProbability", "disable", "excludeRecursion",
    "preventRecursion", "delayUntilRecursion", "scanDepth", "caseSensitive", "matchWholeWords", "group",
    "groupOverride", "groupWeight", "useGroupScoring", "sticky", "cooldown", "delay", "vectorized",
    "characterFilter", "triggers", "ignoreBudget", "matchPersonaDescription", "matchScenario",
    # Character Card V2/V3
    "id", "keys", "secondary_keys", "insertion_order", "enabled", "case_sensitive", "name", "priority",
    "use_regex", "extensions",
    # RisuAI and NovelAI
    "secondkey", "alwaysActive", "insertorder", "mode", "activationPercent", "useRegex", "extentions",
    "text", "displayName", "forceActivation", "contextConfig", "searchRange",
]  # fmt: skip
EXTENSION_KEYS = [
    "position", "depth", "role", "probability", "useProbability", "selectiveLogic", "group", "sticky",
    "delay_until_recursion", "scan_depth", "risu_case_sensitive", "budgetPriority",
    "character_filter", "ignore_budget", "match_character_description", "triggers",
]  # fmt: skip

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**60), 2**60)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(["before_char", "after_char", "constant", "folder", "system", "2", "true", "/x/i"])
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)
field_values = json_values | st.lists(st.text(max_size=8), max_size=4) | st.integers(0, 7)
nested_objects = st.dictionaries(st.sampled_from(EXTENSION_KEYS), field_values, max_size=5)


def entry_objects() -> st.SearchStrategy[dict[str, Any]]:
    plain = st.dictionaries(st.sampled_from(ENTRY_KEYS), field_values, max_size=10)
    with_nested = st.builds(
        lambda base, nested, where: {**base, where: nested},
        plain,
        nested_objects,
        st.sampled_from(["extensions", "extentions", "contextConfig"]),
    )
    return plain | with_nested


entries_list = st.lists(entry_objects() | json_values, max_size=5)
books = st.one_of(
    st.builds(lambda es, extra: {"entries": {str(i): e for i, e in enumerate(es)}, **extra},
              st.lists(entry_objects(), max_size=5), st.dictionaries(st.text(max_size=5), json_values,
                                                                     max_size=2)),
    st.builds(lambda es: {"entries": es, "name": "n"}, entries_list),
    st.builds(lambda es: {"type": "risu", "ver": 1, "data": es}, entries_list),
    st.builds(lambda es, v: {"lorebookVersion": v, "entries": es}, entries_list, json_values),
    st.builds(lambda es: {"spec": "lorebook_v3", "data": {"entries": es}}, entries_list),
    st.builds(lambda b: {"spec": "chara_card_v2", "data": {"character_book": b}}, json_values),
    json_values,
)  # fmt: skip

EXPORTERS = {
    "sillytavern": to_st_world,
    "character_book": to_character_book,
    "risu": to_risu,
    "novelai": to_novelai,
}


def strict(value: Any) -> str:
    return json.dumps(value, sort_keys=True, allow_nan=False)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_give_a_book_or_a_format_error(data: bytes) -> None:
    try:
        import_lorebook(data, "fuzz.json")
    except LorebookFormatError as exc:
        assert exc.message


@settings(max_examples=250, deadline=None)
@given(books)
def test_random_lorebook_json_imports_losslessly_or_fails_cleanly(obj: Any) -> None:
    try:
        book = import_lorebook(json.dumps(obj).encode())
    except LorebookFormatError as exc:
        assert exc.message
        return
    assert book.source is not None
    # every exporter produces plain JSON
    for export in (*EXPORTERS.values(), to_lorebook_v3):
        strict(export(book))
    back = EXPORTERS[book.source.format](book)
    if book.source.format == "sillytavern":  # entries are re-keyed by uid; their content must be equal
        assert strict(list(back.pop("entries").values())) == strict(list(obj["entries"].values()))
        obj = {k: v for k, v in obj.items() if k != "entries"}
    elif "spec" in obj and obj["spec"] == "lorebook_v3":
        back = to_lorebook_v3(book)
    elif "spec" in obj:
        obj = obj["data"]["character_book"]
    assert strict(back) == strict(obj)
    # and the stored form gives the same export
    stored = Lorebook.from_dict(json.loads(json.dumps(book.to_dict())))
    assert strict(EXPORTERS[book.source.format](stored)) == strict(EXPORTERS[book.source.format](book))


VOCAB = ["dragon", "Dragon", "竜", "castle", "king", "/dra(g|k)on/i", "/([a-z]/", "/(a+)+$/", "a b", " ", ""]

lore_entries = st.builds(
    LoreEntry,
    uid=st.integers(0, 5),
    keys=st.lists(st.sampled_from(VOCAB), max_size=3),
    secondary_keys=st.lists(st.sampled_from(VOCAB), max_size=2),
    content=st.sampled_from(
        ["", "the king", "@@depth 1\ndragon lore", "@@activate\n@@role user\nx", "castle " * 5]
    ),
    constant=st.booleans(),
    selective_logic=st.sampled_from(list(SelectiveLogic)),
    order=st.integers(-5, 5),
    position=st.sampled_from(list(Position)),
    probability=st.integers(0, 100),
    disabled=st.booleans(),
    exclude_recursion=st.booleans(),
    prevent_recursion=st.booleans(),
    delay_until_recursion=st.booleans() | st.integers(0, 3),
    scan_depth=st.none() | st.integers(-2, 5),
    case_sensitive=st.none() | st.booleans(),
    match_whole_words=st.none() | st.booleans(),
    group=st.sampled_from(["", "g", "g, h"]),
    group_override=st.booleans(),
    group_weight=st.integers(-1, 100),
    use_group_scoring=st.none() | st.booleans(),
    sticky=st.none() | st.integers(0, 3),
    cooldown=st.none() | st.integers(0, 3),
    delay=st.none() | st.integers(0, 4),
    use_regex=st.booleans(),
    # SillyTavern's entry options, any JSON at all (they come from imported files)
    extensions=st.dictionaries(
        st.sampled_from(
            [
                "characterFilter",
                "character_filter",
                "triggers",
                "ignoreBudget",
                "ignore_budget",
                "matchScenario",
                "matchPersonaDescription",
                "match_creator_notes",
            ]
        ),
        json_values
        | st.fixed_dictionaries(
            {"names": st.lists(st.sampled_from(["Aki", "Beni", 3]), max_size=2), "isExclude": json_values}
        )
        | st.lists(st.sampled_from(["normal", "swipe", "continue", "x"]), max_size=3),
        max_size=4,
    ),
)
world_settings = st.builds(
    WorldInfoSettings,
    scan_depth=st.integers(0, 4),
    budget_percent=st.integers(0, 100),
    budget_cap=st.integers(0, 50),
    min_activations=st.integers(0, 3),
    recursive=st.booleans(),
    max_recursion_steps=st.integers(0, 3),
    match_whole_words=st.booleans(),
    use_group_scoring=st.booleans(),
)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(lore_entries, max_size=8),
    st.lists(st.lists(st.sampled_from(VOCAB), max_size=4).map(" ".join), max_size=5),
    world_settings,
    st.integers(0, 10),
    st.integers(0, 2**32),
    st.sampled_from([None, "Aki", "Beni"]),
    st.sampled_from(list(Generation)),
)
def test_random_entries_activate_within_the_budget(
    entries: list[LoreEntry],
    messages: list[str],
    world: WorldInfoSettings,
    at: int,
    seed: int,
    speaker: str | None,
    generation: Generation,
) -> None:
    book = Lorebook(name="fuzz", scan_depth=None, entries=entries)
    state = LoreTimedState()
    for turn in (at, at + 1, at + 3):  # timers carry from turn to turn
        result = activate_entries(
            [book],
            ScanInput(
                messages=messages,
                turn=turn,
                character_name=speaker,
                character_tags=["fantasy"],
                generation=generation,
                match_text={source: "the dragon king" for source in MatchSource},
            ),
            world,
            state=state,
            count_tokens=lambda t: len(t.split()),
            max_context=200,
            rng=random.Random(seed),
        )
        fired = [a.entry for a in result.entries]
        over = any("ignoreBudget" in a.reason for a in result.entries)  # those may go past the budget
        assert result.tokens_used < result.budget or result.tokens_used == 0 or over
        assert result.tokens_used == sum(len(a.content.split()) for a in result.entries)
        assert not any(e.disabled for e in fired)
        assert len({id(e) for e in fired}) == len(fired)
        assert [a.order for a in result.entries] == sorted(a.order for a in result.entries)
        assert LoreTimedState.from_dict(json.loads(json.dumps(result.state.to_dict()))) == result.state
        state = result.state
