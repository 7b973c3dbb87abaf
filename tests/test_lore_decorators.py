"""Character Card V3 decorators: parsing, stripping, and what each one does to activation."""

from __future__ import annotations

import random

import pytest

from kataribe.lore.decorators import split_decorators
from kataribe.lore.engine import ActivatedEntry, ActivationResult, ScanInput, activate_entries
from kataribe.lore.model import Lorebook, LoreEntry, Position, Role, WorldInfoSettings
from kataribe.lore.timed import LoreTimedState


def fire(entry: LoreEntry, messages: list[str], *, at: int | None = None, depth: int = 2) -> ActivationResult:
    return activate_entries(
        [Lorebook(name="book", entries=[entry])],
        ScanInput(messages=messages, turn=len(messages) if at is None else at),
        WorldInfoSettings(scan_depth=depth),
        state=LoreTimedState(),
        count_tokens=lambda t: len(t.split()),
        max_context=10_000,
        rng=random.Random(0),
    )


def only(entry: LoreEntry, messages: list[str], **kwargs: object) -> ActivatedEntry:
    result = fire(entry, messages, **kwargs)  # type: ignore[arg-type]
    assert len(result.entries) == 1
    return result.entries[0]


def test_decorator_lines_and_the_blank_line_after_them_are_stripped() -> None:
    decorators, text = split_decorators("@@depth 3\n@@role user\n\nThe forest is old.\n@@not a decorator")
    assert (decorators.depth, decorators.role) == (3, Role.USER)
    assert text == "The forest is old.\n@@not a decorator"


def test_content_without_decorators_is_untouched() -> None:
    decorators, text = split_decorators("  @@depth 3 is not at the start")
    assert not decorators.any and text == "  @@depth 3 is not at the start"


def test_unknown_and_invalid_decorators_are_ignored_but_stripped() -> None:
    decorators, text = split_decorators("@@risu_only 4\n@@depth many\nText")
    assert not decorators.any
    assert decorators.ignored == ("@@risu_only 4", "@@depth many")
    assert text == "Text"


def test_fallback_decorator_applies_only_when_the_one_before_did_not() -> None:
    used, _ = split_decorators("@@risu_only 4\n@@@depth 5\nText")
    assert used.depth == 5
    skipped, _ = split_decorators("@@role user\n@@@depth 5\nText")
    assert skipped.depth is None and skipped.role is Role.USER
    chained, _ = split_decorators("@@one\n@@@two\n@@@scan_depth 7\nText")
    assert chained.scan_depth == 7


def test_the_first_decorator_of_a_name_wins() -> None:
    decorators, _ = split_decorators("@@depth 1\n@@depth 9\nText")
    assert decorators.depth == 1


def test_depth_and_role_decorators_place_the_entry_in_the_chat() -> None:
    activated = only(LoreEntry(uid=1, keys=["x"], content="@@depth 2\n@@role assistant\nLore"), ["x"])
    assert (activated.position, activated.depth, activated.role) == (Position.AT_DEPTH, 2, Role.ASSISTANT)
    assert activated.content == "Lore"


@pytest.mark.parametrize(
    ("value", "position"),
    [
        ("before_desc", Position.BEFORE_CHAR),
        ("after_desc", Position.AFTER_CHAR),
        ("personality", Position.AFTER_CHAR),
        ("scenario", Position.AFTER_CHAR),
        ("an_top", Position.AN_TOP),
        ("em_bottom", Position.EM_BOTTOM),
    ],
)
def test_position_decorator_maps_onto_a_prompt_position(value: str, position: Position) -> None:
    entry = LoreEntry(uid=1, keys=["x"], position=Position.AN_BOTTOM, content=f"@@position {value}\nLore")
    assert only(entry, ["x"]).position is position


def test_position_decorator_wins_over_depth_decorator() -> None:
    entry = LoreEntry(uid=1, keys=["x"], content="@@depth 2\n@@position after_desc\nLore")
    assert only(entry, ["x"]).position is Position.AFTER_CHAR


def test_activate_fires_without_keys_and_dont_activate_blocks_matching_keys() -> None:
    assert only(LoreEntry(uid=1, content="@@activate\nLore"), ["nothing"]).reason == "@@activate decorator"
    assert fire(LoreEntry(uid=1, keys=["x"], content="@@dont_activate\nLore"), ["x"]).entries == []
    both = LoreEntry(uid=1, content="@@dont_activate\n@@activate\nLore")
    assert only(both, ["nothing"]).content == "Lore"


def test_scan_depth_decorator_widens_the_window_for_its_entry() -> None:
    messages = ["the key", "b", "c", "d"]
    assert fire(LoreEntry(uid=1, keys=["key"]), messages, depth=1).entries == []
    assert only(LoreEntry(uid=1, keys=["key"], content="@@scan_depth 4\nLore"), messages, depth=1)


def test_additional_keys_require_one_more_key() -> None:
    entry = LoreEntry(uid=1, keys=["castle"], content="@@additional_keys king, queen\nLore")
    assert fire(entry, ["the castle"]).entries == []
    assert "additional key 'queen'" in only(entry, ["the castle and the queen"]).reason


def test_exclude_keys_block_the_entry() -> None:
    entry = LoreEntry(uid=1, keys=["castle"], content="@@exclude_keys ruin,ash\nLore")
    assert only(entry, ["the castle"])
    assert fire(entry, ["the castle in ruin"]).entries == []


def test_activate_only_after_waits_for_that_many_messages() -> None:
    entry = LoreEntry(uid=1, keys=["x"], content="@@activate_only_after 3\nLore")
    assert fire(entry, ["x"], at=2).entries == []
    assert only(entry, ["x"], at=3)


def test_activate_only_every_fires_on_multiples_only() -> None:
    entry = LoreEntry(uid=1, keys=["x"], content="@@activate_only_every 2\nLore")
    assert fire(entry, ["x"], at=3).entries == []
    assert only(entry, ["x"], at=4)
