"""TokenSampler: one request's llama.cpp sampler chain, in llama.cpp's own order: logit bias, repetition
penalties, DRY, grammar, then top-n-sigma, top-k, typical, top-p, min-p, XTC and (dynamic) temperature
(or Mirostat in place of the truncation samplers)."""

from __future__ import annotations

import ctypes
from collections.abc import Sequence

import llama_cpp
from llama_cpp import Llama
from llama_cpp._internals import LlamaContext, LlamaSampler
from llama_cpp.llama_grammar import LlamaGrammar

from kataribe.engine.base import SamplingParams
from kataribe.engine.sampling_rules import validate_sampling
from kataribe.errors import InvalidRequest


class TokenSampler:
    """Samples the next token from the context's last logits and records it in the chain's history."""

    def __init__(self, chain: LlamaSampler) -> None:
        self._chain = chain

    def sample(self, ctx: LlamaContext) -> int:
        return int(llama_cpp.llama_sampler_sample(self._chain.sampler, ctx.ctx, -1))

    def close(self) -> None:
        self._chain.close()


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
            _seed_history(penalties, history, last_n)
            llama_cpp.llama_sampler_chain_add(chain.sampler, penalties)
        if params.dry_multiplier > 0 and params.dry_penalty_last_n != 0:
            last_n = llm.n_ctx() if params.dry_penalty_last_n == -1 else params.dry_penalty_last_n
            dry = _dry_sampler(llm, params, last_n)
            _seed_history(dry, history, last_n)
            llama_cpp.llama_sampler_chain_add(chain.sampler, dry)
        if grammar is not None:
            g = llama_cpp.llama_sampler_init_grammar(
                llm._model.vocab, grammar._grammar.encode("utf-8"), grammar._root.encode("utf-8")
            )
            if not g:
                raise InvalidRequest("The grammar could not be parsed by llama.cpp.", param="grammar")
            llama_cpp.llama_sampler_chain_add(chain.sampler, g)
        seed = llama_cpp.LLAMA_DEFAULT_SEED if params.seed is None else params.seed & 0xFFFFFFFF
        if params.temperature <= 0:
            chain.add_greedy()
        elif params.mirostat:
            _add_temperature(chain, params)
            if params.mirostat == 1:
                chain.add_mirostat(n_vocab, seed, params.mirostat_tau, params.mirostat_eta, 100)
            else:
                chain.add_mirostat_v2(seed, params.mirostat_tau, params.mirostat_eta)
        else:
            if params.top_n_sigma > 0:
                chain.add_top_n_sigma(params.top_n_sigma)
            if params.top_k > 0:
                chain.add_top_k(params.top_k)
            if params.typical_p < 1.0:
                chain.add_typical(params.typical_p, 1)
            if params.top_p < 1.0:
                chain.add_top_p(params.top_p, 1)
            if params.min_p > 0.0:
                chain.add_min_p(params.min_p, 1)
            if params.xtc_probability > 0:
                chain.add_xtc(params.xtc_probability, params.xtc_threshold, 1, seed)
            _add_temperature(chain, params)
            chain.add_dist(seed)
    except BaseException:
        chain.close()
        raise
    return TokenSampler(chain)


def _add_temperature(chain: LlamaSampler, params: SamplingParams) -> None:
    if params.dynatemp_range > 0:
        chain.add_temp_ext(params.temperature, params.dynatemp_range, params.dynatemp_exponent)
    else:
        chain.add_temp(params.temperature)


def _seed_history(sampler: object, history: Sequence[int], last_n: int) -> None:
    """Feeds the prompt's last tokens to a sampler that looks back (penalties, DRY)."""
    for token in history[-last_n:] if last_n > 0 else ():
        llama_cpp.llama_sampler_accept(sampler, token)


def _dry_sampler(llm: Llama, params: SamplingParams, last_n: int) -> object:
    breakers = [b.encode("utf-8") for b in params.dry_sequence_breakers]
    array = (ctypes.c_char_p * len(breakers))(*breakers)
    dry = llama_cpp.llama_sampler_init_dry(
        llm._model.vocab,
        params.dry_multiplier,
        params.dry_base,
        params.dry_allowed_length,
        last_n,
        array,
        len(breakers),
    )
    if not dry:
        raise InvalidRequest("llama.cpp could not create the DRY sampler.", param="dry_multiplier")
    return dry
