"""A chat's (and a sampler preset's) sampler settings: which keys there are, their types, their ranges.

Stored as plain JSON in ``chat.settings["sampler"]`` and in presets; read back as SamplingParams.
"""

from __future__ import annotations

import math
from dataclasses import fields
from typing import Any

from kataribe.engine.base import SamplingParams
from kataribe.engine.sampling_rules import ANY_VOCAB, validate_sampling
from kataribe.errors import InvalidRequest

# every SamplingParams field a user may set per chat (logit_bias needs a model's token ids: not here)
SAMPLER_FIELDS = tuple(f.name for f in fields(SamplingParams) if f.name != "logit_bias")
INTEGER_FIELDS = frozenset(
    {"top_k", "repeat_last_n", "seed", "dry_allowed_length", "dry_penalty_last_n", "mirostat"}
)
LIST_FIELDS = frozenset({"dry_sequence_breakers", "banned_strings"})


def checked_sampler(data: object, where: str = "settings.sampler") -> dict[str, Any]:
    """Known keys only, each of its type and within its range; seed may be null (random)."""
    if not isinstance(data, dict):
        raise InvalidRequest(f"{where} must be an object of sampler values.", param="sampler")
    unknown = sorted(str(k)[:40] for k in data if k not in SAMPLER_FIELDS)
    if unknown:
        raise InvalidRequest(
            f"Unknown sampler settings: {', '.join(unknown)}. Use: {', '.join(SAMPLER_FIELDS)}.",
            param=unknown[0],
        )
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key in LIST_FIELDS:
            if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
                raise InvalidRequest(f"{where}.{key} must be a list of strings.", param=key)
            out[key] = list(value)
        elif value is None and key == "seed":
            out[key] = None
        elif isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise InvalidRequest(f"{where}.{key} must be a number.", param=key)
        elif key in INTEGER_FIELDS:
            if value != int(value):
                raise InvalidRequest(f"{where}.{key} must be a whole number.", param=key)
            out[key] = int(value)
        else:
            out[key] = float(value)
    validate_sampling(params_of(out), ANY_VOCAB)  # ranges are refused when saved, not at the next reply
    return out


def params_of(checked: dict[str, Any]) -> SamplingParams:
    params = SamplingParams()
    for key, value in checked.items():
        setattr(params, key, value)
    return params


def sampling_of_settings(settings: dict[str, Any]) -> SamplingParams:
    """A chat's ``settings.sampler`` as SamplingParams; unknown keys or bad values are a 400."""
    return params_of(checked_sampler(settings.get("sampler") or {}))
