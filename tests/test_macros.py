"""SillyTavern macros: names, time, random/pick/roll, variables, and hostile input."""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kataribe.prompt.macros import (
    MacroContext,
    MacroVariables,
    expand_macros,
    format_js_number,
    humanize_duration,
)

NOW = datetime(2026, 11, 27, 18, 42, 5, tzinfo=UTC)  # a Friday


def make_ctx(
    *,
    variables: MacroVariables | None = None,
    chat_id: str = "chat-1",
    seed: int = 0,
    last_user_time: datetime | None = None,
    group: str = "",
    now: datetime = NOW,
) -> MacroContext:
    return MacroContext(
        user="アリス",
        char="セラフィナ",
        persona="旅人",
        description="森の守り手",
        personality="優しい",
        scenario="森の中",
        mes_examples="<START>\n{{char}}: こんにちは",
        last_message="最後",
        last_user_message="ユーザーの最後",
        last_char_message="キャラの最後",
        now=now,
        last_user_time=last_user_time,
        chat_id=chat_id,
        variables=variables if variables is not None else MacroVariables(),
        rng=random.Random(seed),
        group=group,
        model="smollm2",
    )


def test_names_and_card_fields_expand_case_insensitively() -> None:
    text = (
        "{{user}}/{{CHAR}}/{{Persona}}/{{description}}/{{personality}}/{{scenario}}/{{mesExamples}}/"
        "{{lastMessage}}/{{lastusermessage}}/{{LASTCHARMESSAGE}}/{{model}}"
    )
    assert expand_macros(text, make_ctx()) == (
        "アリス/セラフィナ/旅人/森の守り手/優しい/森の中/<START>\n{{char}}: こんにちは/"
        "最後/ユーザーの最後/キャラの最後/smollm2"
    )


def test_legacy_angle_markers_and_group_names() -> None:
    ctx = make_ctx()
    assert expand_macros("<USER> meets <BOT> and <char>", ctx) == "アリス meets セラフィナ and セラフィナ"
    assert expand_macros("{{group}}|{{charIfNotGroup}}", ctx) == "セラフィナ|セラフィナ"
    in_group = make_ctx(group="セラフィナ, ミナ")
    assert expand_macros("{{group}}|<GROUP>", in_group) == "セラフィナ, ミナ|セラフィナ, ミナ"


def test_unknown_and_broken_macros_stay_as_written_with_their_insides_expanded() -> None:
    ctx = make_ctx()
    assert expand_macros("{{unknown::{{user}}}}", ctx) == "{{unknown::アリス}}"
    assert expand_macros("{{user", ctx) == "{{user"
    assert expand_macros("a }} b {{ }} {{/if}}", ctx) == "a }} b {{ }} {{/if}}"
    assert expand_macros("{{{user}}}", ctx) == "{アリス}"
    assert expand_macros("{{user::extra}}", ctx) == "{{user::extra}}"
    assert expand_macros("", ctx) == ""


def test_original_is_expanded_once_and_only_at_its_first_use() -> None:
    ctx = make_ctx()
    text = "{{original}}\nAlso: {{original}}"
    assert expand_macros(text, ctx, original="You are {{char}}.") == "You are セラフィナ.\nAlso: "
    assert expand_macros("{{original}}", ctx) == "{{original}}"  # nothing to stand for
    assert expand_macros("[{{original}}]", ctx, original="in {{original}}") == "[in {{original}}]"


def test_clock_macros_format_like_sillytavern_in_english() -> None:
    ctx = make_ctx()
    text = "{{time}}|{{date}}|{{weekday}}|{{isotime}}|{{isodate}}"
    assert expand_macros(text, ctx) == "6:42 PM|November 27, 2026|Friday|18:42|2026-11-27"
    assert expand_macros("{{time_UTC+9}}|{{time::UTC-5}}", ctx) == "3:42 AM|1:42 PM"
    tokyo = make_ctx(now=datetime(2026, 1, 1, 0, 5, tzinfo=timezone(timedelta(hours=9))))
    assert expand_macros("{{time}} {{isodate}}", tokyo) == "12:05 AM 2026-01-01"


def test_idle_duration_reads_like_moment_humanize() -> None:
    assert expand_macros("{{idle_duration}}", make_ctx()) == "just now"
    five_minutes = make_ctx(last_user_time=NOW - timedelta(minutes=5))
    assert expand_macros("{{idle_duration}}", five_minutes) == "5 minutes"
    naive_since = make_ctx(last_user_time=datetime(2026, 11, 24, 18, 42))  # naive is taken as UTC
    assert expand_macros("{{idle_duration}}", naive_since) == "3 days"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (10, "a few seconds"),
        (50, "a minute"),
        (300, "5 minutes"),
        (2700, "an hour"),
        (3 * 3600, "3 hours"),
        (23 * 3600, "a day"),
        (3 * 86400, "3 days"),
        (40 * 86400, "a month"),
        (200 * 86400, "7 months"),
        (400 * 86400, "a year"),
        (1000 * 86400, "3 years"),
    ],
)
def test_humanize_duration_thresholds(seconds: int, text: str) -> None:
    assert humanize_duration(timedelta(seconds=seconds)) == text
    assert humanize_duration(timedelta(seconds=-seconds)) == text


def test_random_draws_from_both_list_forms() -> None:
    ctx = make_ctx(seed=7)
    seen = {expand_macros("{{random::春::夏::秋}}", ctx) for _ in range(200)}
    assert seen == {"春", "夏", "秋"}
    legacy = {expand_macros("{{random: a , b }}", ctx) for _ in range(200)}
    assert legacy == {"a", "b"}  # the comma form trims its items
    with_commas = {expand_macros("{{random::x, y::z}}", ctx) for _ in range(200)}
    assert with_commas == {"x, y", "z"}  # the :: form keeps commas inside items
    escaped = {expand_macros(r"{{random:a\,b,c}}", ctx) for _ in range(200)}
    assert escaped == {"a,b", "c"}
    assert expand_macros("{{random}}", ctx) == ""


def test_pick_is_stable_for_the_same_chat_place_and_options() -> None:
    text = "{{pick::赤::青::緑::黄::白::黒::紫::橙}}"
    first = expand_macros(text, make_ctx(seed=1))
    assert all(expand_macros(text, make_ctx(seed=s)) == first for s in range(20))
    # the same macro at other places, or in other chats, is drawn anew
    by_place = expand_macros(" ".join([text] * 40), make_ctx()).split(" ")
    assert len(set(by_place)) > 1
    by_chat = {expand_macros(text, make_ctx(chat_id=f"chat-{n}")) for n in range(40)}
    assert len(by_chat) > 1
    assert expand_macros(" ".join([text] * 40), make_ctx(seed=99)).split(" ") == by_place


def test_roll_sums_dice_and_refuses_absurd_ones_quickly() -> None:
    ctx = make_ctx(seed=3)
    rolls = [int(expand_macros("{{roll:3d6+4}}", ctx)) for _ in range(300)]
    assert min(rolls) >= 7 and max(rolls) <= 22 and len(set(rolls)) > 5
    assert all(1 <= int(expand_macros("{{roll 20}}", ctx)) <= 20 for _ in range(50))
    assert all(1 <= int(expand_macros("{{roll::d4-1}}", ctx)) + 1 <= 4 for _ in range(50))
    start = time.perf_counter()
    assert expand_macros("{{roll:1000000000d6}}", ctx) == "{{roll:1000000000d6}}"
    assert expand_macros("{{roll:1d" + "9" * 5000 + "}}", ctx).startswith("{{roll:1d999")
    assert time.perf_counter() - start < 1
    assert expand_macros("{{roll:banana}}", ctx) == ""  # ST renders an invalid formula as nothing


def test_comments_disappear_and_trim_eats_the_surrounding_line_breaks() -> None:
    ctx = make_ctx()
    assert expand_macros("a{{// note about {{user}}\nover two lines}}b", ctx) == "ab"
    assert expand_macros("上\n\n{{trim}}\n\n下", ctx) == "上下"
    assert expand_macros("a\r\n{{TRIM}}\r\nb", ctx) == "ab"
    assert expand_macros("a {{trim}} b", ctx) == "a  b"  # ST trims line breaks, not spaces
    assert expand_macros("a{{newline}}b{{newline::2}}c", ctx) == "a\nb\n\nc"


def test_variables_set_then_read_left_to_right_and_persist_in_the_object() -> None:
    variables = MacroVariables()
    ctx = make_ctx(variables=variables)
    assert expand_macros("{{setvar::名前::{{user}}}}[{{getvar::名前}}]", ctx) == "[アリス]"
    assert expand_macros("{{getvar::名前}}さん", ctx) == "アリスさん"  # a later expansion sees it
    assert expand_macros("{{getvar::missing}}", ctx) == ""
    assert variables.local == {"名前": "アリス"}
    assert variables.global_ == {}


def test_addvar_adds_numbers_without_trailing_zero_and_appends_text() -> None:
    variables = MacroVariables()
    ctx = make_ctx(variables=variables)
    assert expand_macros("{{addvar::hp::3}}{{addvar::hp::2}}{{getvar::hp}}", ctx) == "5"
    assert expand_macros("{{addvar::hp::2.5}}{{getvar::hp}}", ctx) == "7.5"
    assert expand_macros("{{addvar::log::あ}}{{addvar::log::い}}{{getvar::log}}", ctx) == "あい"
    assert expand_macros("{{setvar::items::[1]}}{{addvar::items::剣}}{{getvar::items}}", ctx) == '[1,"剣"]'
    assert variables.local["hp"] == "7.5"
    assert variables.local["log"] == "あい"


def test_incvar_and_decvar_return_the_new_value() -> None:
    variables = MacroVariables(local={"n": "1"})
    ctx = make_ctx(variables=variables)
    assert expand_macros("{{incvar::n}} {{incvar::n}} {{decvar::fresh}}", ctx) == "2 3 -1"
    assert variables.local == {"n": "3", "fresh": "-1"}


def test_global_variables_are_separate_from_chat_variables() -> None:
    variables = MacroVariables(global_={"visits": "9"})
    ctx = make_ctx(variables=variables)
    text = "{{setglobalvar::mood::晴れ}}{{incglobalvar::visits}}/{{getglobalvar::mood}}/{{getvar::mood}}"
    assert expand_macros(text, ctx) == "10/晴れ/"
    assert expand_macros("{{addglobalvar::visits::5}}{{decglobalvar::visits}}", ctx) == "14"
    assert variables.global_ == {"visits": "14", "mood": "晴れ"}
    assert variables.local == {}


@pytest.mark.parametrize(
    ("value", "text"),
    [(5.0, "5"), (0.1 + 0.2, "0.30000000000000004"), (1e21, "1e+21"), (1e-7, "1e-7"), (-0.5, "-0.5")],
)
def test_numbers_print_like_javascript(value: float, text: str) -> None:
    assert format_js_number(value) == text


def test_hostile_texts_finish_quickly_and_stay_bounded() -> None:
    ctx = make_ctx()
    doubling = "{{setvar::a::xxxxxxxxxx}}" + "{{addvar::a::{{getvar::a}}}}" * 2000 + "{{getvar::a}}" * 50
    cases = [
        "{{" * 50_000 + "user" + "}}" * 50_000,
        "{{user}}" * 50_000,
        "{{" * 100_000,
        "\n" * 100_000 + "{{trim}}" + ("\n" * 1000 + "x") * 50,
        doubling,
    ]
    start = time.perf_counter()
    outputs = [expand_macros(text, ctx) for text in cases]
    assert time.perf_counter() - start < 10
    assert outputs[1] == "アリス" * 50_000
    assert outputs[2] == "{{" * 100_000
    assert all(len(out) < 10_000_000 for out in outputs)


_FRAGMENTS = st.sampled_from(
    [
        "{{", "}}", "{", "}", "::", ":", " ", "\n", "\\,", ",", "user", "char", "setvar", "getvar", "addvar",
        "incvar", "pick", "random", "roll", "trim", "original", "time_UTC+9", "//", "<USER>", "x", "1", "d",
        "99999999999", "名前", "\ud800",
    ]
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(_FRAGMENTS, max_size=60))
def test_any_mix_of_macro_fragments_expands_without_error(pieces: list[str]) -> None:
    text = "".join(pieces)
    result = expand_macros(text, make_ctx(), original="o{{user}}")
    assert isinstance(result, str)
    if "{{" not in text and "<" not in text:
        assert result == text


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_any_text_expands_without_error_and_plain_text_is_untouched(text: str) -> None:
    result = expand_macros(text, make_ctx())
    if "{{" not in text and "<" not in text and "}}" not in text:
        assert result == text
