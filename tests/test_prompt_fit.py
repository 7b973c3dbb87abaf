"""How a prompt and its reply are fitted into the context: cut, refused, or a reply that stops at the end."""

from __future__ import annotations

import pytest

from kataribe.engine.base import GenerationRequest
from kataribe.engine.prompt_fit import fit_prompt
from kataribe.errors import ContextOverflow


def test_a_reply_longer_than_the_room_left_is_a_400_on_openai_routes() -> None:
    with pytest.raises(ContextOverflow) as refused:
        fit_prompt(list(range(90)), GenerationRequest(prompt="x", max_tokens=20), 100)
    assert refused.value.param == "max_tokens"


def test_reply_fills_context_stops_the_reply_at_the_context_end() -> None:
    """llama-server's n_predict and Ollama's num_predict are upper bounds (both servers stop at the
    end of the context); Kataribe answered a prompt that fits with a 400 when they passed it."""
    asked = GenerationRequest(prompt="x", max_tokens=20, reply_fills_context=True)
    fitted = fit_prompt(list(range(90)), asked, 100)
    assert fitted.tokens == list(range(90)) and fitted.max_tokens == 10
    with pytest.raises(ContextOverflow):  # a prompt that does not fit at all is still refused
        fit_prompt(list(range(100)), asked, 100)
