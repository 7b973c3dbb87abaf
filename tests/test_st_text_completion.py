"""SillyTavern's text-completion bodies replayed over real HTTP (PEERS.md): vLLM's top_k -1, group
chats' many stop strings, and a prompt longer than the context with truncation_length."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest

from kataribe.engine.base import GenerationRequest, SamplingParams
from kataribe.engine.remote_request import build_payload
from kataribe.services.sampler_settings import checked_sampler
from tests.conftest import LiveServer

PROMPT = "Alice: Tell me about the old castle on the hill.\nBob:"


def vllm_body(**extra: Any) -> dict[str, Any]:
    """SillyTavern 1.12's Text Completion -> vLLM body, as recorded."""
    return {
        "prompt": PROMPT,
        "model": "SmolLM2-135M-Instruct.Q4_1",
        "max_tokens": 12,
        "stream": False,
        "temperature": 1.2,
        "top_p": 1,
        "top_k": -1,
        "min_p": 0,
        "seed": 7,
        "best_of": 1,
        "min_tokens": 0,
        "skip_special_tokens": True,
        "n": 1,
        "repetition_penalty": 1,
        "presence_penalty": 0,
        "frequency_penalty": 0,
        "stop": ["\nAlice:"],
        **extra,
    }


def post(server: LiveServer, path: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(server.url + path, json=body, timeout=180)


def test_vllm_body_with_top_k_minus_one_generates_with_top_k_off(server: LiveServer) -> None:
    # warm the prompt cache first: a prompt evaluated whole and one taken from the cache give
    # logits a rounding apart, which a seeded sample at temperature 1.2 can tell
    assert post(server, "/v1/completions", vllm_body(top_k=0)).status_code == 200
    r = post(server, "/v1/completions", vllm_body())
    assert r.status_code == 200, r.text
    text = r.json()["choices"][0]["text"]
    assert text
    # -1 is "off", exactly as 0 is (same seed, same text), and not some other cut
    assert post(server, "/v1/completions", vllm_body(top_k=0)).json()["choices"][0]["text"] == text
    assert post(server, "/v1/completions", vllm_body(top_k=1)).json()["choices"][0]["text"] != text


def test_top_k_minus_one_is_off_on_chat_and_kobold(server: LiveServer) -> None:
    chat = {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4, "top_k": -1}
    assert post(server, "/v1/chat/completions", chat).status_code == 200
    kobold = {"prompt": PROMPT, "max_length": 4, "temperature": 1.0, "sampler_seed": 3}

    def text(top_k: int) -> str:
        r = post(server, "/api/v1/generate", {**kobold, "top_k": top_k})
        assert r.status_code == 200, r.text
        return str(r.json()["results"][0]["text"])

    text(0)  # the prompt in the cache first (see above)
    assert text(-1) == text(0)


def test_saved_chat_samplers_take_top_k_minus_one() -> None:
    assert checked_sampler({"top_k": -1}) == {"top_k": -1}


@pytest.mark.parametrize(
    ("kind", "sent"),
    [("vllm", -1), ("openai", -1), ("llama-server", 0), ("llama-cpp-python", 0), ("koboldcpp", 0)],
)
def test_remote_servers_get_their_own_top_k_off(kind: str, sent: int) -> None:
    for off in (-1, 0):
        request = GenerationRequest(prompt="x", sampling=SamplingParams(top_k=off))
        _route, body = build_payload(request, kind=kind, model_name="m", api_base="http://h/v1")
        assert body["top_k"] == sent
    _route, body = build_payload(
        GenerationRequest(prompt="x", sampling=SamplingParams(top_k=20)),
        kind=kind,
        model_name="m",
        api_base="x",
    )
    assert body["top_k"] == 20


def group_chat_stops(n: int) -> list[str]:
    """One "\\nName:" per group member, then the instruct stops, as SillyTavern sends them."""
    return [f"\nMember{i}:" for i in range(n - 2)] + ["\n### Instruction:", "</s>"]


def st_kobold_body(stop: list[str], **extra: Any) -> dict[str, Any]:
    """SillyTavern's Text Completion -> KoboldCpp body on /v1/completions (greedy here)."""
    return {
        "prompt": PROMPT,
        "max_tokens": 16,
        "stream": False,
        "stop": stop,
        "truncation_length": 4096,
        "temperature": 0,
        "top_p": 1,
        "top_k": 0,
        "min_p": 0,
        "rep_pen": 1,
        "rep_pen_range": 0,
        "dry_multiplier": 0,
        "xtc_probability": 0,
        "sampler_order": [6, 0, 1, 3, 4, 2, 5],
        "grammar": "",
        "banned_strings": [],
        **extra,
    }


def test_group_chat_with_forty_stop_strings_stops_at_the_last_one(server: LiveServer) -> None:
    free = post(server, "/v1/completions", st_kobold_body([])).json()["choices"][0]["text"]
    word = next(w for w in free.split() if len(w) > 3)
    stops = [*group_chat_stops(40), word]  # 41 stops; the one the reply meets is the last
    r = post(server, "/v1/completions", st_kobold_body(stops))
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["finish_reason"] == "stop"
    assert r.json()["choices"][0]["text"] == free[: free.index(word)]


def test_stops_beyond_sixty_four_are_dropped_with_a_warning(
    server: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    free = post(server, "/v1/completions", st_kobold_body([])).json()["choices"][0]["text"]
    word = next(w for w in free.split() if len(w) > 3)
    with caplog.at_level(logging.WARNING):
        r = post(server, "/v1/completions", st_kobold_body([*group_chat_stops(64), word]))
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["text"] == free  # the 65th stop was not used
    assert any("only the first 64" in rec.getMessage() for rec in caplog.records)
    kobold = {"prompt": PROMPT, "max_length": 4, "stop_sequence": group_chat_stops(80)}
    assert post(server, "/api/v1/generate", kobold).status_code == 200


def test_prompt_over_the_context_is_cut_from_the_start_with_truncation_length(server: LiveServer) -> None:
    story = "".join(f"Line {i}: the caravan moved on.\n" for i in range(1200)) + "Bob:"  # > 4096 tokens
    body = st_kobold_body(["\nAlice:"], prompt=story, truncation_length=1024, max_tokens=16)
    r = post(server, "/v1/completions", body)
    assert r.status_code == 200, r.text
    usage = r.json()["usage"]
    assert 1024 - 16 - 64 <= usage["prompt_tokens"] <= 1024 - 16  # the newest tokens, as many as fit
    assert usage["prompt_tokens"] + usage["completion_tokens"] <= 1024
    counted = post(server, "/api/extra/tokencount", {"prompt": story}).json()["value"]
    assert counted > 4096


def test_prompt_over_the_context_without_truncation_length_names_what_is_too_long(server: LiveServer) -> None:
    story = "".join(f"Line {i}: the caravan moved on.\n" for i in range(1200))
    body = st_kobold_body([], prompt=story)
    del body["truncation_length"]
    r = post(server, "/v1/completions", body)
    assert r.status_code == 400 and r.json()["error"]["param"] == "prompt"
    fits = "".join(f"Line {i}: the caravan moved on.\n" for i in range(300))  # fits, but not with 4000 more
    r = post(server, "/v1/completions", {**body, "prompt": fits, "max_tokens": 4000})
    assert r.status_code == 400 and r.json()["error"]["param"] == "max_tokens", r.text
    chat = {"messages": [{"role": "user", "content": story}], "max_tokens": 4}
    assert post(server, "/v1/chat/completions", chat).json()["error"]["param"] == "messages"
