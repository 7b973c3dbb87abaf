"""TokenSampler: one request's llama.cpp sampler chain (bias, penalties, grammar, truncation, temperature)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import llama_cpp
from llama_cpp import Llama
from llama_cpp._internals import LlamaContext, LlamaSampler
from llama_cpp.llama_grammar import LlamaGrammar

from kataribe.engine.base import SamplingParams
from kataribe.errors import InvalidRequest


class TokenSampler:
    """Samples the next token from the context's last logits and records it in the chain's history."""

    def __init__(self, chain: LlamaSampler) -> None:
        self._chain = chain

    def sample(self, ctx: LlamaContext) -> int:
        return int(llama_cpp.llama_sampler_sample(self._chain.sampler, ctx.ctx, -1))

    def close(self) -> None:
        self._chain.close()


def validate_sampling(params: SamplingParams, n_vocab: int) -> None:
    checks: list[tuple[bool, str, str]] = [
        (math.isfinite(params.temperature) and params.temperature >= 0, "temperature", "a number >= 0"),
        (0 <= params.top_p <= 1, "top_p", "between 0 and 1"),
        (params.top_k >= 0, "top_k", "0 (off) or more"),
        (0 <= params.min_p <= 1, "min_p", "between 0 and 1"),
        (0 < params.typical_p <= 1, "typical_p", "above 0 and at most 1"),
        (0 < params.repeat_penalty <= 10, "repeat_penalty", "above 0 (1 = off) and at most 10"),
        (params.repeat_last_n >= -1, "repeat_last_n", "-1 (whole context), 0 (off) or more"),
        (-2 <= params.presence_penalty <= 2, "presence_penalty", "between -2 and 2"),
        (-2 <= params.frequency_penalty <= 2, "frequency_penalty", "between -2 and 2"),
    ]
    for ok, name, rule in checks:
        if not ok:
            raise InvalidRequest(f"{name} must be {rule}.", param=name)
    for token, bias in params.logit_bias.items():
        if not 0 <= token < n_vocab:
            raise InvalidRequest(
                f"logit_bias names token {token}, but the vocabulary has ids 0..{n_vocab - 1}.",
                param="logit_bias",
            )
        if not math.isfinite(bias) and bias != -math.inf:
            raise InvalidRequest("logit_bias values must be numbers.", param="logit_bias")


def build_sampler(
    llm: Llama,
    params: SamplingParams,
    *,
    grammar: LlamaGrammar | None,
    history: Sequence[int],
) -> TokenSampler:
    """A sampler chain in llama.cpp's usual order; the prompt seeds the repetition penalties."""
    n_vocab = llm.n_vocab()
    validate_sampling(params, n_vocab)
    chain = LlamaSampler()
    try:
        if params.logit_bias:
            chain.add_logit_bias(n_vocab, params.logit_bias)
        if params.repeat_penalty != 1.0 or params.presence_penalty != 0.0 or params.frequency_penalty != 0.0:
            last_n = llm.n_ctx() if params.repeat_last_n == -1 else params.repeat_last_n
            penalties = llama_cpp.llama_sampler_init_penalties(
                n_vocab,
                last_n,
                params.repeat_penalty,
                params.frequency_penalty,
                params.presence_penalty,
            )
            for token in history[-last_n:] if last_n > 0 else ():
                llama_cpp.llama_sampler_accept(penalties, token)
            llama_cpp.llama_sampler_chain_add(chain.sampler, penalties)
        if grammar is not None:
            g = llama_cpp.llama_sampler_init_grammar(
                llm._model.vocab, grammar._grammar.encode("utf-8"), grammar._root.encode("utf-8")
            )
            if not g:
                raise InvalidRequest("The grammar could not be parsed by llama.cpp.", param="grammar")
            llama_cpp.llama_sampler_chain_add(chain.sampler, g)
        if params.temperature <= 0:
            chain.add_greedy()
        else:
            if params.top_k > 0:
                chain.add_top_k(params.top_k)
            if params.typical_p < 1.0:
                chain.add_typical(params.typical_p, 1)
            if params.top_p < 1.0:
                chain.add_top_p(params.top_p, 1)
            if params.min_p > 0.0:
                chain.add_min_p(params.min_p, 1)
            chain.add_temp(params.temperature)
            seed = llama_cpp.LLAMA_DEFAULT_SEED if params.seed is None else params.seed & 0xFFFFFFFF
            chain.add_dist(seed)
    except BaseException:
        chain.close()
        raise
    return TokenSampler(chain)
