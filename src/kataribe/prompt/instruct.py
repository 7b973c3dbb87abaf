"""Instruct templates: render chat messages as raw text for completion endpoints (KoboldCpp-style)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from kataribe.engine.base import ChatMessage


@dataclass(frozen=True)
class InstructTemplate:
    name: str
    system_prefix: str
    system_suffix: str
    user_prefix: str
    user_suffix: str
    assistant_prefix: str
    assistant_suffix: str
    stop: tuple[str, ...] = field(default_factory=tuple)


PRESETS: dict[str, InstructTemplate] = {
    t.name: t
    for t in (
        InstructTemplate(
            "chatml",
            "<|im_start|>system\n",
            "<|im_end|>\n",
            "<|im_start|>user\n",
            "<|im_end|>\n",
            "<|im_start|>assistant\n",
            "<|im_end|>\n",
            ("<|im_end|>",),
        ),
        InstructTemplate(
            "llama3",
            "<|start_header_id|>system<|end_header_id|>\n\n",
            "<|eot_id|>",
            "<|start_header_id|>user<|end_header_id|>\n\n",
            "<|eot_id|>",
            "<|start_header_id|>assistant<|end_header_id|>\n\n",
            "<|eot_id|>",
            ("<|eot_id|>",),
        ),
        InstructTemplate("mistral", "", "\n\n", "[INST] ", " [/INST]", "", "</s>", ("[INST]",)),
        InstructTemplate(
            "alpaca",
            "",
            "\n\n",
            "### Instruction:\n",
            "\n\n",
            "### Response:\n",
            "\n\n",
            ("### Instruction:",),
        ),
        InstructTemplate("vicuna", "", "\n\n", "USER: ", "\n", "ASSISTANT: ", "\n", ("USER:",)),
    )
}


def render_instruct(messages: Sequence[ChatMessage], template: InstructTemplate) -> str:
    """Messages as text, ending with an open assistant turn for the model to continue."""
    out: list[str] = []
    for m in messages:
        if m.role == "system":
            out.append(template.system_prefix + m.content + template.system_suffix)
        elif m.role == "user":
            out.append(template.user_prefix + m.content + template.user_suffix)
        else:
            out.append(template.assistant_prefix + m.content + template.assistant_suffix)
    out.append(template.assistant_prefix)
    return "".join(out)
