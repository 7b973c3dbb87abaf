"""A prompt's size in bytes bounds its token count from below (the vocabulary's longest piece): with
the real SmolLM2 vocabulary the bound never exceeds the real count, a prompt that cannot fit is
refused at once, and a prompt that will be cut from the start is cut before it is tokenized."""

from __future__ import annotations

import time

import pytest

from kataribe.engine.base import GenerationRequest
from kataribe.engine.llamacpp import EmbeddedEngine
from kataribe.engine.prompt_bound import PromptBound
from kataribe.errors import PromptTooLong

TEXTS = {
    "english": "The old road winds past the stones while rain gathers over the hills. " * 40,
    "japanese": "赤いドラゴンが東京タワーに現れた。人々は空を見上げた。" * 40,
    "whitespace": ("def f():\n" + " " * 80 + "return 1\n\n\n\t\t") * 40,  # the longest pieces are spaces
    "special": "<|im_start|>user\nhi<|im_end|>\n" * 60,
    "emoji and symbols": "😀🐉✨ — «quoted» ¿qué? \u3000 " * 60,
}


@pytest.mark.parametrize("name", sorted(TEXTS))
def test_the_bound_never_exceeds_the_real_token_count(engine: EmbeddedEngine, name: str) -> None:
    text = TEXTS[name]
    real = len(engine.tokenize(text, special=True))
    bound: PromptBound = engine._prompt_bound
    size = len(text.encode())
    assert size > 100  # so the check measures the vocabulary
    with pytest.raises(PromptTooLong) as refused:
        bound.check(text, reserve=0, n_ctx=0)
    assert refused.value.prompt_tokens <= real  # the fewest tokens it claims
    bound.check(text, reserve=0, n_ctx=real)  # fits exactly: never refused


@pytest.mark.parametrize("name", sorted(TEXTS))
def test_the_tail_tokenizes_to_the_same_last_tokens(engine: EmbeddedEngine, name: str) -> None:
    text = TEXTS[name] * 3
    tail = engine._prompt_bound.tail(text, tokens=40)
    assert len(tail) < len(text)
    assert engine.tokenize(tail, special=True)[-40:] == engine.tokenize(text, special=True)[-40:]


def test_a_10_mb_prompt_is_refused_without_tokenizing(engine: EmbeddedEngine) -> None:
    prompt = "hello world " * 900_000
    start = time.perf_counter()
    with pytest.raises(PromptTooLong) as refused:
        engine.generate(GenerationRequest(prompt=prompt, max_tokens=4))
    assert time.perf_counter() - start < 0.5
    assert refused.value.code == "context_length_exceeded"
    assert "at least" in refused.value.message


def test_a_prompt_that_fits_is_not_refused_by_the_bound(engine: EmbeddedEngine) -> None:
    prompt = "The old road winds past the stones. " * 300  # ~11 KB, ~2,400 tokens: over 1 byte a token
    done = engine.generate(GenerationRequest(prompt=prompt, max_tokens=2)).collect()
    assert done.finish_reason in ("length", "stop"), done.error
