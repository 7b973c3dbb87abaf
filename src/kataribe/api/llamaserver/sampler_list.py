"""llama-server's ``samplers`` list on the embedded chain: a truncation sampler or the temperature
left out of the list is turned off; the chain keeps llama.cpp's order whatever order is sent."""

from __future__ import annotations

from dataclasses import replace

from kataribe.engine.base import SamplingParams

CHAIN_ORDER = ("penalties", "dry", "top_n_sigma", "top_k", "typ_p", "top_p", "min_p", "xtc", "temperature")
"""The order the embedded chain runs them in (llama.cpp's default)."""

_NAMES = {
    "penalties": "penalties",
    "dry": "dry",
    "top_n_sigma": "top_n_sigma",
    "top-n-sigma": "top_n_sigma",
    "top_k": "top_k",
    "top-k": "top_k",
    "typ_p": "typ_p",
    "typ-p": "typ_p",
    "typ": "typ_p",
    "typical_p": "typ_p",
    "typical-p": "typ_p",
    "typical": "typ_p",
    "top_p": "top_p",
    "top-p": "top_p",
    "nucleus": "top_p",
    "min_p": "min_p",
    "min-p": "min_p",
    "xtc": "xtc",
    "temperature": "temperature",
    "temp": "temperature",
}
_LETTERS = {
    "e": "penalties",
    "d": "dry",
    "s": "top_n_sigma",
    "k": "top_k",
    "y": "typ_p",
    "p": "top_p",
    "m": "min_p",
    "x": "xtc",
    "t": "temperature",
}
_NEUTRAL: dict[str, dict[str, float]] = {
    "top_n_sigma": {"top_n_sigma": -1.0},
    "top_k": {"top_k": 0},
    "typ_p": {"typical_p": 1.0},
    "top_p": {"top_p": 1.0},
    "min_p": {"min_p": 0.0},
    "xtc": {"xtc_probability": 0.0},
    "temperature": {"temperature": 1.0, "dynatemp_range": 0.0},
}
"""What leaving a sampler out of the list sets. Penalties and DRY are not here: they stay on their own
fields (repeat_penalty 1 / dry_multiplier 0 turn them off), as older clients' lists do not name them."""


def sampler_names(samplers: list[str] | str) -> set[str]:
    """The samplers named (llama.cpp's names, aliases or its one-letter string); unknown names,
    such as tfs_z which llama.cpp dropped, are ignored as llama-server ignores them."""
    if isinstance(samplers, str):
        return {_LETTERS[c] for c in samplers if c in _LETTERS}
    return {_NAMES[name.strip().lower()] for name in samplers if name.strip().lower() in _NAMES}


def apply_sampler_list(params: SamplingParams, samplers: list[str] | str | None) -> SamplingParams:
    """``params`` with every switchable sampler the list leaves out set to its neutral value."""
    if samplers is None:
        return params
    named = sampler_names(samplers)
    off: dict[str, float] = {}
    for name, neutral in _NEUTRAL.items():
        if name not in named and not (name == "temperature" and params.temperature <= 0):
            off.update(neutral)
    return replace(params, **off)  # type: ignore[arg-type]


def active_samplers(params: SamplingParams) -> list[str]:
    """The samplers that will run, in the chain's order (what ``generation_settings`` reports)."""
    on = {
        "penalties": params.repeat_penalty != 1.0
        or params.presence_penalty != 0.0
        or params.frequency_penalty != 0.0,
        "dry": params.dry_multiplier > 0 and params.dry_penalty_last_n != 0,
        "top_n_sigma": params.top_n_sigma > 0,
        "top_k": params.top_k > 0,
        "typ_p": params.typical_p < 1.0,
        "top_p": params.top_p < 1.0,
        "min_p": params.min_p > 0.0,
        "xtc": params.xtc_probability > 0,
        "temperature": True,
    }
    return [name for name in CHAIN_ORDER if on[name]]
