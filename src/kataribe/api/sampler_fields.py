"""Request fields shared by the OpenAI- and KoboldCpp-compatible routes for the samplers role-play
clients send by name (DRY, XTC, top-n-sigma, dynamic temperature, Mirostat)."""

from __future__ import annotations

import json

from kataribe.errors import InvalidRequest

ROLE_PLAY_SAMPLERS = (
    "dynatemp_range",
    "dynatemp_exponent",
    "xtc_probability",
    "xtc_threshold",
    "dry_multiplier",
    "dry_base",
    "dry_allowed_length",
    "dry_penalty_last_n",
    "mirostat",
    "mirostat_tau",
    "mirostat_eta",
)
"""Number fields named the same in SamplingParams, llama-server's API and KoboldCpp's."""


def parse_dry_breakers(value: list[str] | str | None, default: list[str]) -> list[str]:
    """DRY sequence breakers as a list or, as SillyTavern sends them, a JSON-encoded list."""
    if value is None:
        return list(default)
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise InvalidRequest(
                "dry_sequence_breakers must be a list of strings or a JSON-encoded list of strings.",
                param="dry_sequence_breakers",
            ) from None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise InvalidRequest(
            "dry_sequence_breakers must be a list of strings.", param="dry_sequence_breakers"
        )
    return value
