"""The lore model's storage JSON and the World Info settings' checks."""

from __future__ import annotations

import json

import pytest

from kataribe.lore.model import (
    InsertionStrategy,
    Lorebook,
    LoreDataError,
    LoreEntry,
    Position,
    Role,
    SelectiveLogic,
    WorldInfoSettings,
)


def test_every_entry_field_survives_storage() -> None:
    entry = LoreEntry(
        uid="castle",
        keys=["castle", "/keep/i"],
        secondary_keys=["king"],
        content="@@depth 2\nStone.",
        comment="Castle",
        constant=True,
        selective=False,
        selective_logic=SelectiveLogic.NOT_ANY,
        order=7,
        position=Position.EM_TOP,
        depth=9,
        role=Role.USER,
        probability=35,
        use_probability=False,
        disabled=True,
        exclude_recursion=True,
        prevent_recursion=True,
        delay_until_recursion=3,
        scan_depth=6,
        case_sensitive=False,
        match_whole_words=True,
        group="a, b",
        group_override=True,
        group_weight=12,
        use_group_scoring=True,
        sticky=2,
        cooldown=4,
        delay=8,
        use_regex=True,
        name="Keep",
        priority=3,
        extensions={"vectorized": True, "nested": {"list": [1, "two", None]}},
    )
    book = Lorebook(
        name="B", description="d", entries=[entry], scan_depth=4, token_budget=90, recursive_scanning=False
    )
    restored = Lorebook.from_dict(json.loads(json.dumps(book.to_dict())))
    assert restored == book
    assert restored.entries[0].delay_until_recursion == 3
    assert (
        LoreEntry.from_dict(LoreEntry(uid=1, delay_until_recursion=True).to_dict()).delay_until_recursion
        is True
    )


def test_entry_label_falls_back_from_comment_to_name_to_key_to_uid() -> None:
    assert LoreEntry(uid=1, comment="C", name="N", keys=["k"]).label == "C"
    assert LoreEntry(uid=1, name="N", keys=["k"]).label == "N"
    assert LoreEntry(uid=1, keys=["k"]).label == "k"
    assert LoreEntry(uid=1).label == "#1"


@pytest.mark.parametrize(
    "stored",
    [
        {"uid": True},
        {"uid": 1, "keys": "x", "position": "middle"},
        {"uid": 1, "selective_logic": 9},
        {"uid": 1, "order": "first"},
        {"uid": 1, "extensions": []},
        {"uid": 1, "source": {"format": "x", "kept": [[["a"], 1]]}},
    ],
)
def test_malformed_stored_entry_is_a_clear_error(stored: dict[str, object]) -> None:
    with pytest.raises(LoreDataError, match="stored lore entry is malformed"):
        LoreEntry.from_dict(stored)


def test_settings_default_to_sillytavern_values_with_recursion_on() -> None:
    settings = WorldInfoSettings()
    assert (settings.scan_depth, settings.budget_percent, settings.budget_cap) == (2, 25, 0)
    assert settings.recursive and not settings.case_sensitive and not settings.match_whole_words
    assert WorldInfoSettings.from_dict(json.loads(json.dumps(settings.to_dict()))) == settings


@pytest.mark.parametrize("bad", [{"scan_depth": -1}, {"budget_percent": 101}, {"max_recursion_steps": 1.5}])
def test_out_of_range_settings_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(LoreDataError, match="must be a whole number"):
        WorldInfoSettings(**bad)  # type: ignore[arg-type]


def test_settings_from_storage_check_names_and_values() -> None:
    assert (
        WorldInfoSettings.from_dict({"insertion_strategy": "evenly"}).insertion_strategy
        is InsertionStrategy.EVENLY
    )
    with pytest.raises(LoreDataError, match="unknown setting"):
        WorldInfoSettings.from_dict({"depth": 3})
    with pytest.raises(LoreDataError, match="true or false"):
        WorldInfoSettings.from_dict({"recursive": "maybe"})
