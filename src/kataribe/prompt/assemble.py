"""Prompt assembly: ordered sections, token budget, cache-friendly layout, chat messages or text."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from kataribe.engine.base import ChatMessage
from kataribe.prompt.instruct import InstructTemplate, render_instruct


class Section(StrEnum):
    MAIN = "main"
    LORE_BEFORE = "lore_before"
    PERSONA = "persona"
    DESCRIPTION = "description"
    PERSONALITY = "personality"
    SCENARIO = "scenario"
    LORE_AFTER = "lore_after"
    EXAMPLES = "examples"
    HISTORY = "history"
    POST_HISTORY = "post_history"


DEFAULT_ORDER: tuple[Section, ...] = tuple(Section)
"""SillyTavern's story-string order; the history and post-history instructions come last."""


@dataclass
class HistoryItem:
    role: str
    text: str
    name: str | None = None
    message_id: int | None = None


@dataclass
class DepthInjection:
    """Text inserted among the last messages: depth 0 = after the newest, 1 = before it, ..."""

    text: str
    depth: int
    role: str = "system"
    source: str = "author_note"
    order: int = 0


@dataclass
class AssemblyInput:
    sections: dict[Section, str]
    """Fixed sections, already macro-expanded. Missing or blank sections are left out."""
    history: list[HistoryItem]
    """Oldest first."""
    lore_before: list[str] = field(default_factory=list)
    lore_after: list[str] = field(default_factory=list)
    examples: list[str] = field(default_factory=list)
    """Example dialogue blocks, in preference order (the first ones are kept when space is short)."""
    injections: list[DepthInjection] = field(default_factory=list)
    order: Sequence[Section] = DEFAULT_ORDER
    disabled: frozenset[Section] = frozenset()
    names_in_history: bool = False
    """Prefix history lines with the speaker's name (group chats)."""


@dataclass
class Budget:
    max_context: int
    reply_reserve: int
    history_drop_fraction: float = 0.25
    """When history overflows it is dropped in chunks of this share of its budget, so the kept
    prefix stays byte-identical for many turns and the engine's prefix cache keeps working."""


@dataclass
class SectionReport:
    section: str
    tokens: int
    text: str


@dataclass
class AssembledPrompt:
    messages: list[ChatMessage]
    text: str | None
    """The prompt as raw text when an instruct template was used, else None."""
    report: list[SectionReport]
    total_tokens: int
    budget_tokens: int
    history_kept: int
    history_dropped: int
    examples_kept: int


TokenCounter = Callable[[str], int]


def _join(parts: Sequence[str]) -> str:
    return "\n".join(p.strip("\n") for p in parts if p and p.strip())


def _history_text(item: HistoryItem, with_names: bool) -> str:
    return f"{item.name}: {item.text}" if with_names and item.name else item.text


def _history_start(costs: list[int], budget: int, chunk: int) -> int:
    """The first history message to keep, on a fixed grid of token offsets from the chat's start.

    The minimal start that fits is rounded up to the next grid line (chunk tokens apart, counted
    from the first message). Messages only ever get appended, so grid lines do not move: the
    start stays put, and the prompt prefix stays identical, until the history outgrows another
    whole chunk.
    """
    total = sum(costs)
    if total <= budget:
        return 0
    offsets = [0]
    for c in costs:
        offsets.append(offsets[-1] + c)
    need_drop = total - budget
    grid = max(1, chunk)
    target = -(-need_drop // grid) * grid  # drop at least this many tokens: the next grid line
    for i, off in enumerate(offsets):
        if off >= target:
            return i
    return len(costs)


def assemble_prompt(
    data: AssemblyInput,
    budget: Budget,
    count_tokens: TokenCounter,
    *,
    message_overhead: int = 4,
    instruct: InstructTemplate | None = None,
) -> AssembledPrompt:
    """Budget and lay out a prompt. Fixed sections first, then history newest-first, then examples.

    ``message_overhead`` is what the chat template adds per message (role markers); callers
    measure it with the real template. The result's ``total_tokens`` is a planning figure; the
    engine still checks the rendered prompt.
    """
    enabled = [s for s in data.order if s not in data.disabled]
    fixed: dict[Section, str] = {}
    for s in enabled:
        if s in (Section.HISTORY, Section.EXAMPLES):
            continue
        if s is Section.LORE_BEFORE:
            text = _join(data.lore_before)
        elif s is Section.LORE_AFTER:
            text = _join(data.lore_after)
        else:
            text = data.sections.get(s, "")
        if text.strip():
            fixed[s] = text.strip("\n")
    fixed_costs = {s: count_tokens(t) for s, t in fixed.items()}
    injections = sorted(data.injections, key=lambda i: (-i.depth, i.order))
    injection_cost = sum(count_tokens(i.text) + message_overhead for i in injections)
    # system message + post-history message overheads
    overhead = 2 * message_overhead
    available = (
        budget.max_context - budget.reply_reserve - sum(fixed_costs.values()) - injection_cost - overhead
    )

    history_on = Section.HISTORY in enabled
    history = data.history if history_on else []
    costs = [count_tokens(_history_text(h, data.names_in_history)) + message_overhead for h in history]

    # Examples get what the whole history leaves. Measuring against the whole history (not the
    # part that will be kept) means examples only ever go away as a chat grows, one at a time,
    # instead of coming and going with every history chunk dropped — each change would move
    # text in the cached prefix.
    examples_kept: list[str] = []
    examples_cost = 0
    if Section.EXAMPLES in enabled:
        room = available - sum(costs)
        for block in data.examples:
            cost = count_tokens(block) + 1
            if cost > room:
                break
            examples_kept.append(block)
            examples_cost += cost
            room -= cost

    history_budget = max(available - examples_cost, 0)
    # The grid must not move when the lore that fired changes size, so it is measured against the
    # whole prompt budget, not against what is left after this turn's injections.
    chunk = int((budget.max_context - budget.reply_reserve) * budget.history_drop_fraction)
    start = _history_start(costs, history_budget, chunk)
    kept = history[start:]
    used_history = sum(costs[start:])
    examples_text = _join(examples_kept)

    # Stable text first: everything before the history goes into one system message.
    story_parts: list[tuple[str, str]] = []
    for s in enabled:
        if s in (Section.HISTORY, Section.POST_HISTORY):
            continue
        text = examples_text if s is Section.EXAMPLES else fixed.get(s, "")
        if text:
            story_parts.append((s.value, text))
    system_text = "\n\n".join(t for _s, t in story_parts)

    messages: list[ChatMessage] = []
    if system_text:
        messages.append(ChatMessage("system", system_text))
    body = [ChatMessage(h.role, _history_text(h, data.names_in_history), h.name) for h in kept]
    # Volatile injections go in near the end, so the long stable prefix above them is reused.
    for inj in injections:
        at = max(0, len(body) - max(inj.depth, 0))
        body.insert(at, ChatMessage(inj.role, inj.text))
    messages.extend(body)
    post = fixed.get(Section.POST_HISTORY)
    if post:
        messages.append(ChatMessage("system", post))

    report = [SectionReport(name, count_tokens(text), text) for name, text in story_parts]
    report += [
        SectionReport(f"injection:{i.source}@{i.depth}", count_tokens(i.text), i.text) for i in injections
    ]
    report.append(SectionReport("history", used_history, f"{len(kept)} messages"))
    if post:
        report.append(SectionReport(Section.POST_HISTORY.value, fixed_costs[Section.POST_HISTORY], post))
    total = sum(r.tokens for r in report) + overhead
    rendered = render_instruct(messages, instruct) if instruct is not None else None
    return AssembledPrompt(
        messages=messages,
        text=rendered,
        report=report,
        total_tokens=total,
        budget_tokens=budget.max_context - budget.reply_reserve,
        history_kept=len(kept),
        history_dropped=start,
        examples_kept=len(examples_kept),
    )
