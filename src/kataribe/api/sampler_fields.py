"""Request fields shared by the OpenAI- and KoboldCpp-compatible routes for the samplers role-play
clients send by name (DRY, XTC, top-n-sigma, dynamic temperature, Mirostat)."""

from __future__ import annotations

import json
import logging

from kataribe.errors import InvalidRequest

log = logging.getLogger(__name__)

MAX_STOP_STRINGS = 64
"""Stop strings kept per request (SillyTavern group chats send one per member plus the instruct
stops); beyond it the extras are dropped with a warning, as KoboldCpp drops them, not refused."""

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


def capped_stop_list(stop: list[str] | str | None, field: str) -> list[str]:
    """A ``stop`` sent as one string or a list (empty ones left out), capped as ``capped_stops``."""
    return capped_stops([stop] if isinstance(stop, str) else [s for s in stop or [] if s], field)


def capped_stops(stops: list[str], field: str) -> list[str]:
    """The first MAX_STOP_STRINGS stop strings; the rest are dropped (and logged), not a 400."""
    if len(stops) <= MAX_STOP_STRINGS:
        return stops
    log.warning("%s has %d stop strings; only the first %d are used.", field, len(stops), MAX_STOP_STRINGS)
    return stops[:MAX_STOP_STRINGS]
