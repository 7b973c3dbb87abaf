"""The recommended-models list: the shipped file, the user's edited copy, filters, bad files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kataribe.errors import InvalidRequest
from kataribe.library.recommendations import (
    MAX_FILE_BYTES,
    USES,
    Recommendation,
    RecommendationsError,
    filter_recommendations,
    load_recommendations,
    parse_recommendations,
    recommendations_to_json,
)


@pytest.fixture(scope="module")
def shipped() -> list[Recommendation]:
    return load_recommendations()


def entry(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "my-model",
        "name": "My Model",
        "hf_repo": "someone/My-Model-GGUF",
        "base_model": "someone/My-Model",
        "use": ["chat"],
        "languages": ["ja"],
        "censorship": "sfw",
        "kind": "instruct",
        "parameters": "12B",
        "suggested_quant": "Q4_K_M",
        "suggested_context": 8192,
        "prompt_template": "chatml",
        "notes": "mine",
    }
    base.update(changes)
    return base


def document(*entries: dict[str, Any]) -> str:
    return json.dumps({"version": 1, "models": list(entries)})


def test_shipped_file_loads_and_covers_every_use(shipped: list[Recommendation]) -> None:
    assert len(shipped) >= 8
    for use in USES:
        assert filter_recommendations(shipped, use=use), f"no shipped model for {use}"
    assert len({item.id for item in shipped}) == len(shipped)


def test_shipped_file_holds_the_researched_picks(shipped: list[Recommendation]) -> None:
    by_id = {item.id: item for item in shipped}
    nemo = by_id["mistral-nemo-japanese-instruct-2408"]
    assert nemo.base_model == "cyberagent/Mistral-Nemo-Japanese-Instruct-2408"
    assert (nemo.censorship, nemo.prompt_template, nemo.parameters) == ("sfw", "chatml", "12B")
    assert by_id["phi-4"].censorship == "sfw"
    assert by_id["lumimaid-magnum-v4-12b"].censorship == "nsfw"
    novel_repos = {item.hf_repo.split("/")[0] for item in filter_recommendations(shipped, use="novel")}
    assert {"mmnga", "Aratako", "Local-Novel-LLM-project", "Sdff-Ltba"} <= novel_repos


def test_every_shipped_pick_has_a_context_and_a_quant(shipped: list[Recommendation]) -> None:
    for item in shipped:
        assert 2048 <= item.suggested_context <= 32768, item.id
        assert item.suggested_quant.isupper(), item.id
        assert item.notes, item.id


def test_filters_combine(shipped: list[Recommendation]) -> None:
    japanese_sfw_chat = filter_recommendations(shipped, use="chat", language="ja", censorship="sfw")
    assert [item.id for item in japanese_sfw_chat] == ["mistral-nemo-japanese-instruct-2408"]
    assert all("en" in item.languages for item in filter_recommendations(shipped, language="EN"))
    assert filter_recommendations(shipped) == shipped


def test_language_filter_matches_the_primary_subtag() -> None:
    items = parse_recommendations(document(entry(languages=["ja-JP"])))
    assert filter_recommendations(items, language="ja") == items
    assert filter_recommendations(items, language="en") == []


@pytest.mark.parametrize(
    ("kwargs", "param"), [({"use": "story"}, "use"), ({"censorship": "r18"}, "censorship")]
)
def test_unknown_filter_values_are_errors_not_empty_lists(
    shipped: list[Recommendation], kwargs: dict[str, str], param: str
) -> None:
    with pytest.raises(InvalidRequest) as caught:
        filter_recommendations(shipped, **kwargs)
    assert caught.value.param == param


def test_users_copy_is_read_instead_and_unknown_keys_survive(tmp_path: Path) -> None:
    path = tmp_path / "recommendations.json"
    path.write_text(document(entry(license="apache-2.0", ui={"color": "#ff0"})), encoding="utf-8")
    (item,) = load_recommendations(path)
    assert item.id == "my-model" and item.verified is True
    assert item.extra == {"license": "apache-2.0", "ui": {"color": "#ff0"}}
    assert item.to_dict()["ui"] == {"color": "#ff0"}


def test_round_trip_keeps_every_field(shipped: list[Recommendation]) -> None:
    again = parse_recommendations(recommendations_to_json(shipped))
    assert again == shipped
    assert json.loads(recommendations_to_json(shipped))["models"][0]["license"] == "apache-2.0"


def test_optional_fields_may_be_left_out() -> None:
    raw = entry()
    for key in ("base_model", "notes"):
        del raw[key]
    (item,) = parse_recommendations(document(raw))
    assert (item.base_model, item.notes, item.verified) == (None, "", True)


def test_unverified_entries_are_flagged() -> None:
    (item,) = parse_recommendations(document(entry(verified=False)))
    assert item.verified is False


@pytest.mark.parametrize(
    ("changes", "field", "says"),
    [
        ({"use": ["story"]}, "use", "'story' is not one"),
        ({"use": []}, "use", "non-empty list"),
        ({"use": ["chat", "chat"]}, "use", "repeats"),
        ({"censorship": "r18"}, "censorship", "expected one of sfw, nsfw, uncensored"),
        ({"kind": "chat"}, "kind", "expected one of base, instruct"),
        ({"suggested_context": "8k"}, "suggested_context", "whole number"),
        ({"suggested_context": True}, "suggested_context", "whole number"),
        ({"suggested_context": 10**12}, "suggested_context", "whole number"),
        ({"hf_repo": "https://huggingface.co/a/b"}, "hf_repo", "not a valid value"),
        ({"hf_repo": "<script>alert(1)</script>/x"}, "hf_repo", "not a valid value"),
        ({"base_model": 5}, "base_model", "non-empty text"),
        ({"id": "Has Spaces"}, "id", "not a valid value"),
        ({"name": ""}, "name", "non-empty text"),
        ({"name": "a\x00b"}, "name", "control characters"),
        ({"name": "x" * 5000}, "name", "at most 200"),
        ({"languages": ["Japanese"]}, "languages", "'Japanese' is not one"),
        ({"parameters": "twelve"}, "parameters", "not a valid value"),
        ({"verified": "yes"}, "verified", "true or false"),
    ],
)
def test_bad_entries_name_the_entry_and_field(changes: dict[str, Any], field: str, says: str) -> None:
    text = document(entry(id="fine-one"), entry(**{"id": "second", **changes}))
    with pytest.raises(RecommendationsError) as caught:
        parse_recommendations(text, source="recommendations.json")
    message = caught.value.message
    assert message.startswith("recommendations.json, entry 2")
    assert f"field '{field}'" in message and says in message
    assert message.endswith("delete it to use the shipped list.")
    assert caught.value.param == field


def test_missing_required_field_is_named() -> None:
    raw = entry()
    del raw["hf_repo"]
    with pytest.raises(
        RecommendationsError, match="entry 1 \\('my-model'\\), field 'hf_repo': this required"
    ):
        parse_recommendations(document(raw))


def test_duplicate_ids_are_refused() -> None:
    with pytest.raises(RecommendationsError, match="entry 2 \\('my-model'\\), field 'id': entry 1 already"):
        parse_recommendations(document(entry(), entry()))


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("{not json", "not valid JSON (line 1"),
        ("[]", 'must be a JSON object with a "models" list'),
        ('{"models": {}}', 'must be a JSON object with a "models" list'),
        ('{"models": [42]}', "entry 1: expected an object"),
        ('{"models": [NaN]}', "NaN, which is not valid JSON"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ],
)
def test_broken_files_get_clear_errors(text: str, says: str) -> None:
    with pytest.raises(RecommendationsError) as caught:
        parse_recommendations(text)
    assert says in caught.value.message


def test_huge_file_is_refused_before_parsing(tmp_path: Path) -> None:
    path = tmp_path / "recommendations.json"
    path.write_bytes(b" " * (MAX_FILE_BYTES + 10))
    with pytest.raises(RecommendationsError, match="larger than 1024 KiB"):
        load_recommendations(path)


def test_non_utf8_and_missing_files_are_clear(tmp_path: Path) -> None:
    path = tmp_path / "recommendations.json"
    path.write_bytes(b'{"models": ["\xff"]}')
    with pytest.raises(RecommendationsError, match="not UTF-8"):
        load_recommendations(path)
    with pytest.raises(RecommendationsError, match="Cannot read"):
        load_recommendations(tmp_path / "absent.json")


def test_utf8_bom_from_windows_notepad_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "recommendations.json"
    path.write_bytes(b"\xef\xbb\xbf" + document(entry(notes="日本語のメモ")).encode())
    (item,) = load_recommendations(path)
    assert item.notes == "日本語のメモ"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from([*entry().keys(), "extra"]), json_values, max_size=8))
def test_hostile_entries_load_or_fail_cleanly(changes: dict[str, Any]) -> None:
    try:
        items = parse_recommendations(document(entry(**changes)))
    except RecommendationsError as exc:
        assert "entry 1" in exc.message
        return
    assert parse_recommendations(recommendations_to_json(items)) == items
