"""Wire-format logit bias ({"token id": bias}) to engine form, shared by the OpenAI and Kobold APIs."""

from __future__ import annotations

from collections.abc import Mapping

from kataribe.errors import InvalidRequest

BIAS_LIMIT = 100.0


def parse_logit_bias(raw: Mapping[str, float] | None) -> dict[int, float]:
    """Keys must be token ids; values are clamped to ±100 as OpenAI and KoboldCpp do."""
    bias: dict[int, float] = {}
    for key, value in (raw or {}).items():
        try:
            bias[int(key)] = max(-BIAS_LIMIT, min(BIAS_LIMIT, float(value)))
        except (TypeError, ValueError):
            raise InvalidRequest(
                f"logit_bias keys must be token ids (integers as strings); got '{key}'.", param="logit_bias"
            ) from None
    return bias
