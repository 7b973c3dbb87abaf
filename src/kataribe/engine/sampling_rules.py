"""The ranges every sampler setting must keep, checked before a request reaches llama.cpp (and when a
chat's or a preset's sampler settings are saved). Pure Python: no llama.cpp needed to check."""

from __future__ import annotations

import math

from kataribe.engine.bans import MAX_PHRASE_CHARS, MAX_PHRASES
from kataribe.engine.base import SamplingParams
from kataribe.errors import InvalidRequest

MAX_DRY_BREAKERS = 64
ANY_VOCAB = 1 << 30
"""For checks made before a model is known (saved settings): any token id is allowed."""


def validate_sampling(params: SamplingParams, n_vocab: int) -> None:
    """Refuses values outside each sampler's range. top_k is any whole number: 0 or below is off
    (vLLM and SillyTavern send -1), as in llama.cpp."""
    checks: list[tuple[bool, str, str]] = [
        (math.isfinite(params.temperature) and params.temperature >= 0, "temperature", "a number >= 0"),
        (0 <= params.top_p <= 1, "top_p", "between 0 and 1"),
        (0 <= params.min_p <= 1, "min_p", "between 0 and 1"),
        (0 < params.typical_p <= 1, "typical_p", "above 0 and at most 1"),
        (0 < params.repeat_penalty <= 10, "repeat_penalty", "above 0 (1 = off) and at most 10"),
        (params.repeat_last_n >= -1, "repeat_last_n", "-1 (whole context), 0 (off) or more"),
        (-2 <= params.presence_penalty <= 2, "presence_penalty", "between -2 and 2"),
        (-2 <= params.frequency_penalty <= 2, "frequency_penalty", "between -2 and 2"),
        (0 <= params.dynatemp_range <= 5, "dynatemp_range", "between 0 (off) and 5"),
        (0 < params.dynatemp_exponent <= 10, "dynatemp_exponent", "above 0 and at most 10"),
        (params.top_n_sigma == -1 or 0 < params.top_n_sigma <= 10, "top_n_sigma", "-1 (off) or in (0, 10]"),
        (0 <= params.xtc_probability <= 1, "xtc_probability", "between 0 (off) and 1"),
        (0 <= params.xtc_threshold <= 1, "xtc_threshold", "between 0 and 1 (above 0.5 XTC does nothing)"),
        (0 <= params.dry_multiplier <= 10, "dry_multiplier", "between 0 (off) and 10"),
        (1 <= params.dry_base <= 10, "dry_base", "between 1 and 10"),
        (1 <= params.dry_allowed_length <= 100, "dry_allowed_length", "between 1 and 100"),
        (params.dry_penalty_last_n >= -1, "dry_penalty_last_n", "-1 (whole context), 0 (off) or more"),
        (params.mirostat in (0, 1, 2), "mirostat", "0 (off), 1 or 2"),
        (0 < params.mirostat_tau <= 20, "mirostat_tau", "above 0 and at most 20"),
        (0 < params.mirostat_eta <= 1, "mirostat_eta", "above 0 and at most 1"),
    ]
    for ok, name, rule in checks:
        if not ok:
            raise InvalidRequest(f"{name} must be {rule}.", param=name)
    breakers = params.dry_sequence_breakers
    if len(breakers) > MAX_DRY_BREAKERS or not all(isinstance(b, str) and 0 < len(b) <= 40 for b in breakers):
        raise InvalidRequest(
            f"dry_sequence_breakers must be at most {MAX_DRY_BREAKERS} strings of 1 to 40 characters.",
            param="dry_sequence_breakers",
        )
    phrases = params.banned_strings
    if len(phrases) > MAX_PHRASES or not all(
        isinstance(p, str) and len(p) <= MAX_PHRASE_CHARS for p in phrases
    ):
        raise InvalidRequest(
            f"banned_strings must be at most {MAX_PHRASES} strings of at most {MAX_PHRASE_CHARS} characters.",
            param="banned_strings",
        )
    for token, bias in params.logit_bias.items():
        if not 0 <= token < n_vocab:
            raise InvalidRequest(
                f"logit_bias names token {token}, but the vocabulary has ids 0..{n_vocab - 1}.",
                param="logit_bias",
            )
        if not math.isfinite(bias) and bias != -math.inf:
            raise InvalidRequest("logit_bias values must be numbers.", param="logit_bias")
