"""A model's chat template (Jinja, as in the GGUF; ChatML when it has none): messages to prompt text,
including an open assistant message to continue."""

from __future__ import annotations

from collections.abc import Sequence

from llama_cpp.llama_chat_format import Jinja2ChatFormatter

from kataribe.engine.base import ChatMessage
from kataribe.errors import InvalidRequest

CHATML_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content']"
    " + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}{% endif %}"
)


class ChatTemplate:
    def __init__(self, template: str | None, *, bos: str, eos: str, eos_id: int) -> None:
        tpl = template or CHATML_TEMPLATE
        self._formatters = {
            flag: Jinja2ChatFormatter(
                tpl, eos_token=eos, bos_token=bos, add_generation_prompt=flag, stop_token_ids=[eos_id]
            )
            for flag in (True, False)
        }

    def render(self, messages: Sequence[ChatMessage], add_generation_prompt: bool = True) -> str:
        formatter = self._formatters[add_generation_prompt]
        payload = [
            {"role": m.role, "content": m.content} | ({"name": m.name} if m.name else {}) for m in messages
        ]
        try:
            return str(formatter(messages=payload).prompt)  # type: ignore[arg-type]
        except Exception as exc:  # a template may raise on role orders it does not support
            raise InvalidRequest(
                f"The model's chat template rejected these messages: {exc}. "
                "Check the order of roles (many templates want user/assistant to alternate).",
                param="messages",
            ) from exc

    def render_continuation(self, messages: Sequence[ChatMessage]) -> str:
        """The template's text up to the end of the last (assistant) message, left open."""
        last = messages[-1] if messages else None
        if last is None or last.role != "assistant":
            raise InvalidRequest("Only an assistant message can be continued.", param="messages")
        if not last.content:
            return self.render(messages[:-1], True)
        text = self.render(messages, False)
        cut = text.rfind(last.content)
        if cut == -1:  # the template changed the text (trimmed it, say): write it after the prompt
            return self.render(messages[:-1], True) + last.content
        return text[: cut + len(last.content)]
