"""World Info activation: keys, selective logic, scan depth, recursion, order, budget, min activations."""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence

import pytest

from kataribe.lore.engine import ActivationResult, ScanInput, SkipReason, activate_entries
from kataribe.lore.model import InsertionStrategy, Lorebook, LoreEntry, SelectiveLogic, WorldInfoSettings
from kataribe.lore.timed import LoreTimedState


def words(text: str) -> int:
    return len(text.split())


def fire(
    entries: Iterable[LoreEntry] | Sequence[Lorebook],
    messages: Sequence[str],
    *,
    settings: WorldInfoSettings | None = None,
    extra: Sequence[str] = (),
    max_context: int = 100_000,
    seed: int = 0,
) -> ActivationResult:
    items = list(entries)
    books = items if items and isinstance(items[0], Lorebook) else [Lorebook(name="book", entries=items)]
    return activate_entries(
        books,  # type: ignore[arg-type]
        ScanInput(messages=list(messages), turn=len(messages), extra_scan_text=list(extra)),
        settings or WorldInfoSettings(),
        state=LoreTimedState(),
        count_tokens=words,
        max_context=max_context,
        rng=random.Random(seed),
    )


def uids(result: ActivationResult) -> list[int | str]:
    return [a.entry.uid for a in result.entries]


def test_key_matches_as_a_substring_in_any_case_and_the_reason_names_the_message() -> None:
    result = fire([LoreEntry(uid=1, keys=["Dragon"])], ["User: hello", "Bot: a red dragonfly"])
    assert uids(result) == [1]
    assert result.entries[0].reason == "key 'Dragon' in message 1"


def test_case_sensitive_entry_needs_the_exact_case() -> None:
    entry = LoreEntry(uid=1, keys=["Dragon"], case_sensitive=True)
    assert uids(fire([entry], ["a dragon"])) == []
    assert uids(fire([entry], ["a Dragon"])) == [1]


def test_entry_override_beats_the_global_case_setting() -> None:
    settings = WorldInfoSettings(case_sensitive=True)
    assert uids(fire([LoreEntry(uid=1, keys=["Dragon"])], ["a dragon"], settings=settings)) == []
    relaxed = LoreEntry(uid=2, keys=["Dragon"], case_sensitive=False)
    assert uids(fire([relaxed], ["a dragon"], settings=settings)) == [2]


def test_whole_words_reject_a_key_inside_a_longer_word() -> None:
    settings = WorldInfoSettings(match_whole_words=True)
    entry = LoreEntry(uid=1, keys=["cat"])
    assert uids(fire([entry], ["a category of things"], settings=settings)) == []
    assert uids(fire([entry], ["the cat, asleep"], settings=settings)) == [1]


def test_whole_words_match_a_multi_word_key_as_a_plain_substring() -> None:
    settings = WorldInfoSettings(match_whole_words=True)
    assert uids(fire([LoreEntry(uid=1, keys=["black cat"])], ["two black cats"], settings=settings)) == [1]


def test_whole_words_still_find_japanese_keys_inside_japanese_text() -> None:
    # SillyTavern's \W is JavaScript's ASCII-only one, so kana and kanji count as word boundaries
    settings = WorldInfoSettings(match_whole_words=True)
    entries = [LoreEntry(uid=1, keys=["ドラゴン"]), LoreEntry(uid=2, keys=["東京"])]
    assert sorted(uids(fire(entries, ["赤いドラゴンが東京タワーに現れた"], settings=settings))) == [1, 2]


def test_regex_key_uses_its_own_flags_not_the_case_setting() -> None:
    entries = [LoreEntry(uid=1, keys=["/dra(g|k)on/i"]), LoreEntry(uid=2, keys=["/Drakon/"])]
    assert uids(fire(entries, ["THE DRAKON"])) == [1]
    assert sorted(uids(fire(entries, ["the Drakon"]))) == [1, 2]


def test_regex_key_with_an_escaped_slash_matches_the_slash() -> None:
    assert uids(fire([LoreEntry(uid=1, keys=[r"/and\/or/"])], ["this and/or that"])) == [1]


def test_regex_key_multiline_and_dotall_flags_work_as_in_javascript() -> None:
    entries = [LoreEntry(uid="m", keys=["/^dragon/m"]), LoreEntry(uid="s", keys=["/red.dragon/s"])]
    assert sorted(uids(fire(entries, ["a red\ndragon"]))) == ["m", "s"]
    assert uids(fire(entries, ["a red dragon"])) == ["s"]


def test_v3_use_regex_keys_are_patterns_and_broken_ones_match_literally() -> None:
    entry = LoreEntry(uid=1, keys=["dra(g|k)on", "smile :)"], use_regex=True)
    assert uids(fire([entry], ["the DRAKON"])) == [1]
    assert uids(fire([entry], ["a smile :) here"])) == [1]
    assert uids(fire([entry], ["a smile here"])) == []


def test_invalid_regex_key_never_matches_and_raises_nothing() -> None:
    entry = LoreEntry(uid=1, keys=["/([a-z]/"])
    assert uids(fire([entry], ["/([a-z]/ abc"])) == []


def test_catastrophic_regex_key_is_refused_instead_of_hanging() -> None:
    entry = LoreEntry(uid=1, keys=["/(a+)+$/"])
    assert uids(fire([entry], ["a" * 40 + "!"])) == []


LOGIC_CASES = [
    (SelectiveLogic.AND_ANY, "the castle of the king", True),
    (SelectiveLogic.AND_ANY, "the castle", False),
    (SelectiveLogic.NOT_ALL, "castle, king and queen", False),
    (SelectiveLogic.NOT_ALL, "castle and king", True),
    (SelectiveLogic.NOT_ANY, "castle and king", False),
    (SelectiveLogic.NOT_ANY, "the castle", True),
    (SelectiveLogic.AND_ALL, "castle and king", False),
    (SelectiveLogic.AND_ALL, "castle, king and queen", True),
]


@pytest.mark.parametrize(("logic", "text", "fires"), LOGIC_CASES)
def test_selective_logic_combines_secondary_keys(logic: SelectiveLogic, text: str, fires: bool) -> None:
    entry = LoreEntry(uid=1, keys=["castle"], secondary_keys=["king", "queen"], selective_logic=logic)
    result = fire([entry], [text])
    assert uids(result) == ([1] if fires else [])
    if fires:
        assert "secondary" in result.entries[0].reason


def test_secondary_keys_are_ignored_when_the_entry_is_not_selective() -> None:
    entry = LoreEntry(
        uid=1,
        keys=["castle"],
        secondary_keys=["king"],
        selective=False,
        selective_logic=SelectiveLogic.AND_ALL,
    )
    assert uids(fire([entry], ["the castle"])) == [1]


def test_constant_entry_fires_without_keys_and_says_why() -> None:
    result = fire([LoreEntry(uid=1, constant=True, content="always")], ["nothing here"])
    assert [(a.entry.uid, a.reason) for a in result.entries] == [(1, "constant")]


def test_disabled_entry_never_fires_even_when_constant() -> None:
    entries = [LoreEntry(uid=1, constant=True, disabled=True), LoreEntry(uid=2, keys=["x"], disabled=True)]
    assert uids(fire(entries, ["x"])) == []


def test_probability_rolls_with_the_given_random_generator() -> None:
    entry = LoreEntry(uid=1, keys=["x"], probability=30)
    outcomes = [bool(fire([entry], ["x"], seed=seed).entries) for seed in range(300)]
    assert 0.2 < sum(outcomes) / len(outcomes) < 0.4
    assert outcomes == [bool(fire([entry], ["x"], seed=seed).entries) for seed in range(300)]
    lost = next(fire([entry], ["x"], seed=seed) for seed in range(300) if not outcomes[seed])
    assert [s.reason for s in lost.skipped] == [SkipReason.PROBABILITY]


def test_probability_is_ignored_when_use_probability_is_off() -> None:
    entry = LoreEntry(uid=1, keys=["x"], probability=0, use_probability=False)
    assert all(fire([entry], ["x"], seed=seed).entries for seed in range(50))


def test_global_scan_depth_counts_the_most_recent_messages() -> None:
    messages = ["the dragon", "b", "c", "d", "e"]
    entry = LoreEntry(uid=1, keys=["dragon"])
    assert uids(fire([entry], messages, settings=WorldInfoSettings(scan_depth=2))) == []
    assert uids(fire([entry], messages, settings=WorldInfoSettings(scan_depth=5))) == [1]


def test_entry_scan_depth_overrides_the_global_one() -> None:
    messages = ["the dragon", "b", "c", "d", "e"]
    entries = [LoreEntry(uid=1, keys=["dragon"], scan_depth=5), LoreEntry(uid=2, keys=["dragon"])]
    assert uids(fire(entries, messages, settings=WorldInfoSettings(scan_depth=1))) == [1]


def test_scan_depth_zero_scans_nothing() -> None:
    assert uids(fire([LoreEntry(uid=1, keys=["x"], scan_depth=0)], ["x"])) == []


def test_extra_scan_text_is_scanned_and_named_in_the_reason() -> None:
    result = fire([LoreEntry(uid=1, keys=["lighthouse"])], ["hi"], extra=["Author's note: a lighthouse"])
    assert result.entries[0].reason == "key 'lighthouse' in extra scan text 0"


def castle_and_king(**king: object) -> list[LoreEntry]:
    return [
        LoreEntry(uid="castle", comment="Castle", keys=["castle"], content="The king lives here."),
        LoreEntry(uid="king", keys=["king"], content="The king is old.", **king),  # type: ignore[arg-type]
    ]


def test_recursion_scans_activated_content_and_names_the_source() -> None:
    result = fire(castle_and_king(), ["we reach the castle"])
    assert sorted(map(str, uids(result))) == ["castle", "king"]
    king = next(a for a in result.entries if a.entry.uid == "king")
    assert king.reason == "key 'king' via recursion from 'Castle'"


def test_recursion_off_scans_only_the_chat() -> None:
    result = fire(castle_and_king(), ["the castle"], settings=WorldInfoSettings(recursive=False))
    assert uids(result) == ["castle"]


def test_exclude_recursion_entry_cannot_be_triggered_by_other_entries() -> None:
    assert uids(fire(castle_and_king(exclude_recursion=True), ["the castle"])) == ["castle"]
    # it still fires from the chat itself
    assert "king" in uids(fire(castle_and_king(exclude_recursion=True), ["the castle and the king"]))


def test_prevent_recursion_entry_does_not_trigger_others() -> None:
    entries = castle_and_king()
    entries[0].prevent_recursion = True
    assert uids(fire(entries, ["the castle"])) == ["castle"]


def test_delay_until_recursion_entry_fires_only_in_a_recursion_pass() -> None:
    delayed = LoreEntry(uid="delayed", keys=["castle"], delay_until_recursion=True)
    # as in SillyTavern, a lone level-1 entry never sees a recursion pass
    assert uids(fire([delayed], ["the castle"])) == []
    trigger = LoreEntry(uid="trigger", constant=True, content="banners")
    assert sorted(uids(fire([delayed, trigger], ["the castle"]))) == ["delayed", "trigger"]
    one_pass = WorldInfoSettings(max_recursion_steps=1)
    assert uids(fire([delayed, trigger], ["the castle"], settings=one_pass)) == ["trigger"]


def test_delay_until_recursion_levels_run_in_order() -> None:
    entries = [
        LoreEntry(uid="gate", keys=["castle"], content="A moat.", delay_until_recursion=1),
        LoreEntry(uid="moat", keys=["moat"], content="Deep water.", delay_until_recursion=2),
        LoreEntry(uid="never", keys=["water"], delay_until_recursion=3, exclude_recursion=True),
    ]
    assert sorted(map(str, uids(fire(entries, ["the castle"])))) == ["gate", "moat"]


def test_max_recursion_steps_stops_the_chain() -> None:
    entries = [
        LoreEntry(uid="a", keys=["start"], content="bravo"),
        LoreEntry(uid="b", keys=["bravo"], content="charlie"),
        LoreEntry(uid="c", keys=["charlie"], content="end"),
    ]
    assert sorted(map(str, uids(fire(entries, ["start"])))) == ["a", "b", "c"]
    two = WorldInfoSettings(max_recursion_steps=2)
    assert sorted(map(str, uids(fire(entries, ["start"], settings=two)))) == ["a", "b"]


def test_entries_come_out_lowest_order_first() -> None:
    entries = [LoreEntry(uid=u, constant=True, order=o) for u, o in [(1, 10), (2, 50), (3, 30)]]
    assert uids(fire(entries, ["x"])) == [1, 3, 2]


def test_budget_fills_by_order_and_reports_the_rest() -> None:
    entries = [
        LoreEntry(uid=u, constant=True, order=o, content="w " * 10) for u, o in [(1, 100), (2, 300), (3, 200)]
    ]
    result = fire(entries, ["x"], max_context=100)  # 25% of 100 = 25 tokens
    assert result.budget == 25
    assert sorted(uids(result)) == [2, 3]  # 10 + 10; a third would reach the budget
    assert result.tokens_used == 20
    assert [(s.entry.uid, s.reason) for s in result.skipped] == [(1, SkipReason.BUDGET)]


def test_budget_cap_limits_the_percentage_budget() -> None:
    entries = [LoreEntry(uid=u, constant=True, order=o, content="w " * 10) for u, o in [(1, 300), (2, 200)]]
    result = fire(entries, ["x"], max_context=1000, settings=WorldInfoSettings(budget_cap=15))
    assert result.budget == 15
    assert uids(result) == [1]
    assert result.tokens_used == 10


def test_constant_entries_get_no_budget_priority_over_higher_order() -> None:
    entries = [
        LoreEntry(uid="constant", constant=True, order=1, content="w " * 10),
        LoreEntry(uid="keyed", keys=["x"], order=500, content="w " * 10),
    ]
    assert uids(fire(entries, ["x"], max_context=60)) == ["keyed"]


def test_min_activations_widen_the_window_until_something_fires() -> None:
    messages = ["an old dragon", "b", "c", "d"]
    entry = LoreEntry(uid=1, keys=["dragon"])
    settings = WorldInfoSettings(scan_depth=1, min_activations=1)
    result = fire([entry], messages, settings=settings)
    assert uids(result) == [1]
    assert "widened to 4 messages" in result.entries[0].reason
    capped = WorldInfoSettings(scan_depth=1, min_activations=1, min_activations_depth_max=3)
    assert uids(fire([entry], messages, settings=capped)) == []


def test_book_scan_depth_overrides_the_global_depth_for_its_entries() -> None:
    messages = ["the dragon", "b", "c"]
    deep = Lorebook(name="deep", scan_depth=3, entries=[LoreEntry(uid="deep", keys=["dragon"])])
    shallow = Lorebook(name="shallow", entries=[LoreEntry(uid="shallow", keys=["dragon"])])
    assert uids(fire([deep, shallow], messages, settings=WorldInfoSettings(scan_depth=1))) == ["deep"]


def test_book_without_recursive_scanning_is_not_triggered_by_recursion() -> None:
    source = Lorebook(name="a", entries=[LoreEntry(uid="castle", keys=["castle"], content="the king")])
    closed = Lorebook(name="b", recursive_scanning=False, entries=[LoreEntry(uid="king", keys=["king"])])
    assert uids(fire([source, closed], ["the castle"])) == ["castle"]


def test_book_token_budget_caps_that_book_only() -> None:
    small = Lorebook(
        name="small",
        token_budget=15,
        entries=[LoreEntry(uid=u, constant=True, order=o, content="w " * 10) for u, o in [(1, 20), (2, 10)]],
    )
    other = Lorebook(name="other", entries=[LoreEntry(uid=3, constant=True, content="w " * 10)])
    result = fire([small, other], ["x"])
    assert sorted(uids(result)) == [1, 3]
    assert [(s.entry.uid, s.reason) for s in result.skipped] == [(2, SkipReason.BOOK_BUDGET)]


def test_insertion_strategy_decides_which_book_spends_the_budget_first() -> None:
    def books() -> list[Lorebook]:
        low = Lorebook(
            name="character", entries=[LoreEntry(uid="low", constant=True, order=1, content="w " * 10)]
        )
        high = Lorebook(
            name="global", entries=[LoreEntry(uid="high", constant=True, order=9, content="w " * 10)]
        )
        return [low, high]

    by_book = fire(books(), ["x"], max_context=60)
    assert uids(by_book) == ["low"]
    evenly = fire(
        books(),
        ["x"],
        max_context=60,
        settings=WorldInfoSettings(insertion_strategy=InsertionStrategy.EVENLY),
    )
    assert uids(evenly) == ["high"]


def test_activation_changes_none_of_its_inputs() -> None:
    book = Lorebook(name="b", entries=castle_and_king(sticky=2, cooldown=3))
    before = book.to_dict()
    state = LoreTimedState()
    result = fire([book], ["the castle"])
    assert book.to_dict() == before
    assert state == LoreTimedState()
    assert result.state.sticky  # the new timers are in the result
