"""Nothing a client sends crashes the server: random bodies get an answer below 500."""

from __future__ import annotations

from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import LiveServer

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
FIELDS = [
    "model",
    "messages",
    "prompt",
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "typical_p",
    "repeat_penalty",
    "presence_penalty",
    "frequency_penalty",
    "seed",
    "stop",
    "n",
    "stream",
    "logit_bias",
    "grammar",
    "response_format",
    "logprobs",
    "top_logprobs",
    "stream_options",
    "memory",
    "rep_pen",
    "stop_sequence",
    "sampler_seed",
    "genkey",
    "typical",
    "trim_stop",
]
bodies = st.dictionaries(st.sampled_from(FIELDS), values, max_size=6)
ROUTES = [
    "/v1/chat/completions",
    "/v1/completions",
    "/api/v1/generate",
    "/api/extra/generate/stream",
    "/api/extra/tokencount",
    "/api/extra/abort",
    "/api/extra/generate/check",
]


def bounded(body: dict[str, Any]) -> dict[str, Any]:
    # keep each accepted request short: the point is the parsing, not long generations
    return {**body, "max_tokens": 2, "max_length": 2}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(route=st.sampled_from(ROUTES), body=bodies)
def test_random_bodies_never_500(server: LiveServer, route: str, body: dict[str, Any]) -> None:
    r = httpx.post(server.url + route, json=bounded(body), timeout=60)
    assert r.status_code < 500, (route, body, r.text)
    if r.status_code >= 400:
        assert r.json()["error"]["message"]
