"""A model's chat template (Jinja, as in the GGUF; ChatML when it has none): messages to prompt text,
including an open assistant message to continue, reshaped when a strict template refuses them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from llama_cpp.llama_chat_format import Jinja2ChatFormatter

from kataribe.engine.base import ChatMessage
from kataribe.engine.chat_normalize import alternate_roles, fold_leading_system
from kataribe.errors import InvalidRequest

CHATML_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content']"
    " + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}{% endif %}"
)


@dataclass(frozen=True)
class Rendered:
    """Prompt text, and how the messages were reshaped first (empty: as the client sent them)."""

    text: str
    normalized: tuple[str, ...] = ()


class ChatTemplate:
    def __init__(self, template: str | None, *, bos: str, eos: str, eos_id: int) -> None:
        tpl = template or CHATML_TEMPLATE
        self._formatters = {
            flag: Jinja2ChatFormatter(
                tpl, eos_token=eos, bos_token=bos, add_generation_prompt=flag, stop_token_ids=[eos_id]
            )
            for flag in (True, False)
        }

    def render(
        self, messages: Sequence[ChatMessage], add_generation_prompt: bool = True, *, reshape: bool = True
    ) -> str:
        """The prompt text; ``reshape=False``: the template as written (it may raise on the messages)."""
        if not reshape:
            return self._apply(messages, add_generation_prompt)
        return self.render_noting(messages, add_generation_prompt).text

    def render_noting(self, messages: Sequence[ChatMessage], add_generation_prompt: bool = True) -> Rendered:
        """The prompt text. A template that rejects the messages (strict role alternation) gets them
        reshaped: roles made to alternate, then, if it still refuses, with no system role either."""
        try:
            return Rendered(self._apply(messages, add_generation_prompt))
        except Exception as exc:  # a template may raise on role orders it does not support
            rejected = exc
        alternating = alternate_roles(messages)
        folded = fold_leading_system(alternating)
        for attempt in (alternating, folded):
            if attempt is None or not attempt.changes:
                continue  # nothing to change, or already the form that was refused
            try:
                return Rendered(self._apply(attempt.messages, add_generation_prompt), attempt.changes)
            except Exception as exc:
                rejected = exc
        raise InvalidRequest(
            f"The model's chat template rejected these messages, even with roles made to alternate: "
            f"{rejected}. Check the order of roles.",
            param="messages",
        ) from rejected

    def render_continuation(self, messages: Sequence[ChatMessage]) -> Rendered:
        """The template's text up to the end of the last (assistant) message, left open."""
        last = messages[-1] if messages else None
        if last is None or last.role != "assistant":
            raise InvalidRequest("Only an assistant message can be continued.", param="messages")
        if not last.content:
            return self.render_noting(messages[:-1], True)
        whole = self.render_noting(messages, False)
        cut = whole.text.rfind(last.content)
        if cut == -1:  # the template changed the text (trimmed it, say): write it after the prompt
            before = self.render_noting(messages[:-1], True)
            return Rendered(before.text + last.content, before.normalized)
        return Rendered(whole.text[: cut + len(last.content)], whole.normalized)

    def _apply(self, messages: Sequence[ChatMessage], add_generation_prompt: bool) -> str:
        payload = [
            {"role": m.role, "content": m.content} | ({"name": m.name} if m.name else {}) for m in messages
        ]
        return str(self._formatters[add_generation_prompt](messages=payload).prompt)  # type: ignore[arg-type]
