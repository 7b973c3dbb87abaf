"""Prompt assembly: section order, budgets, depth injections, chunked history drops."""

from __future__ import annotations

import itertools

from kataribe.prompt.assemble import (
    AssemblyInput,
    Budget,
    DepthInjection,
    HistoryItem,
    Section,
    assemble_prompt,
)
from kataribe.prompt.instruct import PRESETS


def words(text: str) -> int:
    return len(text.split())


def base_input(n_history: int = 4) -> AssemblyInput:
    history = [
        HistoryItem("user" if i % 2 == 0 else "assistant", f"message {i} " + "word " * 8, "N")
        for i in range(n_history)
    ]
    return AssemblyInput(
        sections={
            Section.MAIN: "You are Seraphina.",
            Section.DESCRIPTION: "A guardian of the forest.",
            Section.SCENARIO: "A glade at dusk.",
            Section.POST_HISTORY: "Stay in character.",
        },
        history=history,
        lore_before=["The forest is ancient."],
        lore_after=["Eldoria is a kingdom."],
        examples=["<START>\nUser: hi\nSeraphina: hello", "<START>\nUser: bye\nSeraphina: farewell"],
    )


def test_sections_follow_the_order_and_post_history_comes_last() -> None:
    out = assemble_prompt(base_input(), Budget(max_context=1000, reply_reserve=100), words)
    system = out.messages[0].content
    order = ["You are Seraphina.", "The forest is ancient.", "A guardian", "A glade", "Eldoria is", "<START>"]
    positions = [system.index(s) for s in order]
    assert positions == sorted(positions)
    assert out.messages[-1].content == "Stay in character."
    assert [m.role for m in out.messages[1:-1]] == ["user", "assistant", "user", "assistant"]


def test_custom_order_and_disabled_sections() -> None:
    data = base_input()
    data.order = (Section.SCENARIO, Section.MAIN, Section.HISTORY)
    out = assemble_prompt(data, Budget(1000, 100), words)
    assert out.messages[0].content == "A glade at dusk.\n\nYou are Seraphina."
    data.disabled = frozenset({Section.SCENARIO})
    assert "glade" not in assemble_prompt(data, Budget(1000, 100), words).messages[0].content


def test_injections_at_depth() -> None:
    data = base_input()
    data.injections = [
        DepthInjection("[Note: rain]", depth=2),
        DepthInjection("[Lore: moon]", depth=0, source="lore"),
    ]
    out = assemble_prompt(data, Budget(1000, 100), words)
    contents = [m.content for m in out.messages]
    assert contents[-2] == "[Lore: moon]"  # depth 0: after the newest message, before post-history
    assert contents.index("[Note: rain]") == len(contents) - 1 - 1 - 2 - 1


def test_history_drops_oldest_first_and_examples_fill_what_is_left() -> None:
    data = base_input(n_history=40)
    out = assemble_prompt(data, Budget(max_context=200, reply_reserve=50), words)
    assert out.history_dropped > 0 and out.history_kept + out.history_dropped == 40
    assert out.total_tokens <= 200 - 50
    assert "message 39" in out.messages[-2].content  # the newest message is always kept
    assert out.examples_kept == 0  # no room left for examples after the history
    roomy = assemble_prompt(base_input(), Budget(1000, 100), words)
    assert roomy.examples_kept == 2


def test_history_is_dropped_in_chunks_so_the_prefix_stays_stable() -> None:
    history: list[HistoryItem] = []
    starts: list[int] = []
    for turn in range(120):
        history.append(HistoryItem("user", f"turn {turn} " + "talk " * 10))
        history.append(HistoryItem("assistant", f"reply {turn} " + "answer " * 12))
        data = base_input(0)
        data.history = list(history)
        out = assemble_prompt(data, Budget(max_context=2200, reply_reserve=200), words)
        starts.append(out.history_dropped)
        assert out.total_tokens <= 2000
    changes = sum(1 for a, b in itertools.pairwise(starts) if a != b)
    overflowing = sum(1 for s in starts if s)
    assert overflowing > 50
    # ~34 tokens a turn against chunks of a quarter of ~1,950: the start moves about every 14 turns
    assert changes <= overflowing * 0.1


def test_instruct_text_rendering() -> None:
    out = assemble_prompt(base_input(2), Budget(1000, 100), words, instruct=PRESETS["chatml"])
    assert out.text is not None
    assert out.text.startswith("<|im_start|>system\nYou are Seraphina.")
    assert out.text.endswith("<|im_start|>assistant\n")


def test_report_lists_sections_with_token_counts() -> None:
    out = assemble_prompt(base_input(), Budget(1000, 100), words)
    names = [r.section for r in out.report]
    assert names[:3] == ["main", "lore_before", "description"]
    assert dict((r.section, r.tokens) for r in out.report)["main"] == 3
