"""KoboldCpp's instruct placeholders ({{[INPUT]}}, {{[OUTPUT]}}, {{[SYSTEM]}} and their _END forms),
replaced with the loaded model's own chat-template tags, found by rendering the template around markers."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from kataribe.engine.base import ChatMessage

INPUT, OUTPUT, SYSTEM = "{{[INPUT]}}", "{{[OUTPUT]}}", "{{[SYSTEM]}}"
INPUT_END, OUTPUT_END, SYSTEM_END = "{{[INPUT_END]}}", "{{[OUTPUT_END]}}", "{{[SYSTEM_END]}}"

RenderChat = Callable[[Sequence[ChatMessage], bool], str]
"""``render(messages, add_generation_prompt)``: the model's chat template."""


@dataclass(frozen=True)
class InstructTags:
    """The text a chat template writes around each role's message (KoboldCpp's adapter fields)."""

    system_start: str
    system_end: str
    user_start: str
    user_end: str
    assistant_start: str
    assistant_end: str
    assistant_gen: str
    """What the template writes to open the reply it asks for (usually ``assistant_start``)."""


ALPACA = InstructTags(
    system_start="\n### Instruction:\n",
    system_end="",
    user_start="\n### Instruction:\n",
    user_end="",
    assistant_start="\n### Response:\n",
    assistant_end="",
    assistant_gen="\n### Response:\n",
)
"""KoboldCpp's tags when it knows no template (a remote backend's template is not known here)."""

_S, _U1, _A1, _U2, _A2 = "KTRBSYSMARK0", "KTRBUSERMARK1", "KTRBASSTMARK1", "KTRBUSERMARK2", "KTRBASSTMARK2"


def _after(text: str, marker: str) -> str:
    return text[text.index(marker) + len(marker) :]


def _between(text: str, first: str, then: str) -> str:
    start = text.index(first) + len(first)
    return text[start : text.index(then, start)]


def _strip_prefix(text: str, prefix: str) -> str:
    return text[len(prefix) :] if prefix and text.startswith(prefix) else text


def derive_instruct_tags(render: RenderChat) -> InstructTags:
    """Render a marker conversation (system, user, assistant, user, assistant) and cut the template's
    text between the markers. A template that refuses a system message gets the user tags for it."""
    turns = [
        ChatMessage("user", _U1),
        ChatMessage("assistant", _A1),
        ChatMessage("user", _U2),
        ChatMessage("assistant", _A2),
    ]

    def three(messages: list[ChatMessage]) -> tuple[str, str, str]:
        return render(messages, False), render(messages[:-1], False), render(messages[:-1], True)

    try:
        closed, ends_with_user, opened = three([ChatMessage("system", _S), *turns])
        has_system = True
    except Exception:  # a template that allows no system role (Gemma's, say)
        try:
            closed, ends_with_user, opened = three(turns)
        except Exception:  # a template that renders nothing we can use
            return ALPACA
        has_system = False
    try:
        user_end = _after(ends_with_user, _U2)
        assistant_end = _after(closed, _A2)
        user_start = _strip_prefix(_between(closed, _A1, _U2), assistant_end)
        assistant_start = _strip_prefix(_between(closed, _U1, _A1), user_end)
        assistant_gen = _strip_prefix(_after(opened, _U2), user_end) or assistant_start
        if has_system:
            system_start = closed[: closed.index(_S)]
            between = _between(closed, _S, _U1)
            system_end = between[: -len(user_start)] if user_start and between.endswith(user_start) else ""
        else:
            system_start, system_end = user_start, user_end
    except ValueError:  # the template dropped or rewrote a marker: nothing to cut reliably
        return ALPACA
    return InstructTags(
        system_start=system_start,
        system_end=system_end,
        user_start=user_start,
        user_end=user_end,
        assistant_start=assistant_start,
        assistant_end=assistant_end,
        assistant_gen=assistant_gen,
    )


def _replace_last(text: str, old: str, new: str) -> str:
    head, _, tail = text.rpartition(old)
    return head + new + tail


@dataclass
class InstructText:
    memory: str
    prompt: str
    stop: list[str]


def replace_instruct_placeholders(text: InstructText, tags: InstructTags) -> InstructText:
    """KoboldCpp's rules (koboldcpp.py, transform_genparams). With an _END placeholder in the prompt
    each placeholder is one tag; otherwise {{[INPUT]}} closes the assistant turn and opens a user turn,
    {{[OUTPUT]}} closes the user turn and opens the assistant's (the very first {{[INPUT]}} only opens).
    The last {{[OUTPUT]}} opens the reply as the template's generation prompt does. In stop sequences a
    placeholder becomes its opening tag, stripped."""
    memory, prompt = text.memory, text.prompt
    paired = INPUT_END in prompt or OUTPUT_END in prompt
    if tags.assistant_gen != tags.assistant_start:
        gen = tags.assistant_gen if paired else tags.user_end + tags.assistant_gen
        if OUTPUT in prompt:
            prompt = _replace_last(prompt, OUTPUT, gen)
        elif OUTPUT in memory:
            memory = _replace_last(memory, OUTPUT, gen)
    if paired:
        table = {
            INPUT: tags.user_start,
            OUTPUT: tags.assistant_start,
            SYSTEM: tags.system_start,
            INPUT_END: tags.user_end,
            OUTPUT_END: tags.assistant_end,
            SYSTEM_END: tags.system_end,
        }
    else:
        if INPUT in memory:
            memory = memory.replace(INPUT, tags.user_start, 1)
        else:
            prompt = prompt.replace(INPUT, tags.user_start, 1)
        table = {
            INPUT: tags.assistant_end + tags.user_start,
            OUTPUT: tags.user_end + tags.assistant_start,
            SYSTEM: tags.system_start,
            INPUT_END: "",
            OUTPUT_END: "",
            SYSTEM_END: "",
        }
    for placeholder, tag in table.items():
        memory = memory.replace(placeholder, tag)
        prompt = prompt.replace(placeholder, tag)
    stop_tags = {
        INPUT: tags.user_start,
        OUTPUT: tags.assistant_start,
        INPUT_END: tags.user_end,
        OUTPUT_END: tags.assistant_end,
    }
    stops = [stop_tags[s].strip() if s in stop_tags else s for s in text.stop]
    return InstructText(memory=memory, prompt=prompt, stop=[s for s in stops if s])
