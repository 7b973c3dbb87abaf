"""llama-server's request fields in engine form: a prompt of text and token ids, logit_bias pairs,
and the sampler fields (with its ``samplers`` list applied)."""

from __future__ import annotations

import math
from typing import Any

from kataribe.api.llamaserver.sampler_list import apply_sampler_list
from kataribe.api.llamaserver.schemas import CompletionBody
from kataribe.api.logit_bias import BIAS_LIMIT
from kataribe.api.sampler_fields import ROLE_PLAY_SAMPLERS, parse_dry_breakers
from kataribe.engine.base import SamplingParams
from kataribe.errors import InvalidRequest

RANDOM_SEEDS = (-1, 0xFFFFFFFF)


def prompt_parts(prompt: str | list[Any]) -> list[str | list[int]]:
    """One prompt as text and runs of token ids; several prompts are refused (send one per request)."""
    if isinstance(prompt, str):
        return [prompt]
    if len(prompt) == 1 and isinstance(prompt[0], str | list):
        return prompt_parts(prompt[0])
    several = len(prompt) > 1 and all(isinstance(p, str) for p in prompt)
    if several or any(isinstance(p, list | dict) for p in prompt):
        raise InvalidRequest("Send one prompt per request (a string or one list of tokens).", param="prompt")
    parts: list[str | list[int]] = []
    for item in prompt:
        if isinstance(item, bool) or not isinstance(item, int | str):
            raise InvalidRequest("A prompt list holds token ids and strings only.", param="prompt")
        if isinstance(item, str):
            parts.append(item)
        elif parts and isinstance(parts[-1], list):
            parts[-1].append(item)
        else:
            parts.append([item])
    return parts


def _bias_value(value: Any) -> float:
    if value is False:
        return -math.inf
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidRequest("A logit_bias value is a number or false (never).", param="logit_bias")
    return max(-BIAS_LIMIT, min(BIAS_LIMIT, float(value)))


def bias_pairs(raw: list[list[Any]] | dict[str, float | bool]) -> list[tuple[int | str, float]]:
    """[[id or text, bias], ...] or {"id or text": bias}: ids stay ids, other keys are text."""
    pairs: list[tuple[int | str, float]] = []
    if isinstance(raw, dict):
        for key, value in raw.items():
            token = key.strip()
            pairs.append((int(token) if token.lstrip("-").isdigit() else key, _bias_value(value)))
        return pairs
    for item in raw:
        if len(item) != 2 or isinstance(item[0], bool) or not isinstance(item[0], int | str):
            raise InvalidRequest(
                'logit_bias pairs are [token id or text, bias], e.g. [[15043, -1.0], ["Hello", false]].',
                param="logit_bias",
            )
        pairs.append((item[0], _bias_value(item[1])))
    return pairs


def sampling_from(body: CompletionBody) -> SamplingParams:
    base = SamplingParams()

    def pick(value: Any, default: Any) -> Any:
        return default if value is None else value

    params = SamplingParams(
        temperature=pick(body.temperature, base.temperature),
        top_p=pick(body.top_p, base.top_p),
        top_k=max(0, pick(body.top_k, base.top_k)),
        min_p=pick(body.min_p, base.min_p),
        typical_p=pick(body.typical_p, base.typical_p),
        repeat_penalty=pick(body.repeat_penalty, base.repeat_penalty),
        repeat_last_n=pick(body.repeat_last_n, base.repeat_last_n),
        presence_penalty=pick(body.presence_penalty, base.presence_penalty),
        frequency_penalty=pick(body.frequency_penalty, base.frequency_penalty),
        seed=None if body.seed is None or body.seed in RANDOM_SEEDS else body.seed,
        top_n_sigma=pick(body.top_n_sigma, base.top_n_sigma),
        dry_sequence_breakers=parse_dry_breakers(body.dry_sequence_breakers, base.dry_sequence_breakers),
        banned_strings=list(body.banned_strings or []),
        **{name: getattr(body, name) for name in ROLE_PLAY_SAMPLERS if getattr(body, name) is not None},
    )
    return apply_sampler_list(params, body.samplers)
