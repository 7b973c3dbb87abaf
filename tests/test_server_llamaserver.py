"""llama-server's native API and the tokenizer routes, as SillyTavern's llama.cpp, vLLM, Aphrodite and
Default (text-generation-webui) types and llama.cpp's own web UI call them."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import LiveServer
from tests.sse import iter_sse
from tests.test_server_fuzz import values

MODEL = "SmolLM2-135M-Instruct.Q4_1"
JAPANESE = "日本の首都は東京です。京都は"


def st_llamacpp_body(prompt: str, **changes: Any) -> dict[str, Any]:
    """What SillyTavern 1.12 sends for its "llama.cpp" text-completion type (PEERS.md): the
    llama-server fields plus the ones it sends every backend."""
    body: dict[str, Any] = {
        "prompt": prompt,
        "model": "",
        "max_new_tokens": 24,
        "max_tokens": 24,
        "n_predict": 24,
        "stream": True,
        "cache_prompt": True,
        "temperature": 0.7,
        "top_p": 0.9,
        "typical_p": 1,
        "typical": 1,
        "min_p": 0.05,
        "top_k": 40,
        "repetition_penalty": 1.1,
        "repeat_penalty": 1.1,
        "repeat_last_n": 64,
        "rep_pen": 1.1,
        "rep_pen_range": 64,
        "presence_penalty": 0,
        "frequency_penalty": 0,
        "tfs": 1,
        "tfs_z": 1,
        "top_a": 0,
        "mirostat": 0,
        "mirostat_mode": 0,
        "mirostat_tau": 5,
        "mirostat_eta": 0.1,
        "dynatemp_range": 0,
        "dynatemp_exponent": 1,
        "dry_multiplier": 0.8,
        "dry_base": 1.75,
        "dry_allowed_length": 2,
        "dry_penalty_last_n": 0,
        "dry_sequence_breakers": '["\\n", ":", "\\"", "*"]',
        "xtc_threshold": 0.1,
        "xtc_probability": 0,
        "samplers": ["top_k", "tfs_z", "typical_p", "top_p", "min_p", "xtc", "temperature"],
        "sampler_priority": ["temperature", "top_k", "top_p"],
        "logit_bias": [],
        "grammar": "",
        "ignore_eos": False,
        "ban_eos_token": False,
        "skip_special_tokens": True,
        "add_bos_token": True,
        "seed": -1,
        "stop": ["\nUser:", "\nAssistant:"],
        "stopping_strings": ["\nUser:", "\nAssistant:"],
        "truncation_length": 4096,
        "min_keep": 0,
        "api_type": "llamacpp",
    }
    body.update(changes)
    return body


def post(server: LiveServer, path: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(server.url + path, json=body, timeout=120)


def stream_completion(server: LiveServer, body: dict[str, Any]) -> list[dict[str, Any]]:
    with httpx.stream("POST", server.url + "/completion", json=body, timeout=120) as r:
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"].startswith("text/event-stream")
        return [data for _event, data in iter_sse(r)]


def test_sillytavern_llamacpp_stream_replay(server: LiveServer) -> None:
    chunks = stream_completion(server, st_llamacpp_body("User: Say hello.\nAssistant:"))
    *parts, final = chunks
    assert parts and all(c["stop"] is False and isinstance(c["content"], str) for c in parts)
    assert final["stop"] is True and final["content"] == ""
    assert final["stop_type"] in ("eos", "limit", "word")
    text = "".join(c["content"] for c in parts)
    assert text.strip() and "\nUser:" not in text
    assert final["tokens_predicted"] <= 24 and final["tokens_evaluated"] > 0
    assert final["timings"]["predicted_n"] == final["tokens_predicted"]
    settings = final["generation_settings"]
    assert settings["n_ctx"] == 4096 and settings["n_predict"] == 24
    assert settings["dry_sequence_breakers"] == ["\n", ":", '"', "*"]  # the JSON string, parsed
    assert settings["samplers"] == ["penalties", "top_k", "top_p", "min_p", "temperature"]


def test_streamed_japanese_equals_non_streamed(server: LiveServer) -> None:
    body = {"prompt": JAPANESE, "n_predict": 30, "temperature": 0}
    post(server, "/completion", body)  # both answers below start from the cache
    whole = post(server, "/completion", body).json()
    chunks = stream_completion(server, {**body, "stream": True})
    assert "".join(c["content"] for c in chunks[:-1]) == whole["content"]
    assert whole["stop"] is True and chunks[-1]["tokens_predicted"] == whole["tokens_predicted"]


def test_completions_alias_and_stop_word(server: LiveServer) -> None:
    base = {"prompt": "Count: 1, 2, 3, 4,", "n_predict": 16, "temperature": 0}
    free = post(server, "/completions", base).json()["content"]
    stop = free.strip()[:1]
    stopped = post(server, "/completion", {**base, "stop": [stop]}).json()
    assert stopped["stop_type"] == "word" and stopped["stopping_word"] == stop
    assert stop not in stopped["content"]
    limited = post(server, "/completion", {**base, "n_predict": 3}).json()
    assert limited["stop_type"] == "limit" and limited["tokens_predicted"] == 3


def test_stop_strings_past_the_limit_are_dropped_not_refused(server: LiveServer) -> None:
    base = {"prompt": "Count: 1, 2, 3, 4,", "n_predict": 16, "temperature": 0}
    free = post(server, "/completion", base).json()["content"]
    stop = free.strip()[:1]
    unused = [f"never-{i}" for i in range(64)]
    within = post(server, "/completion", {**base, "stop": [*unused[:63], stop]}).json()
    assert within["stop_type"] == "word" and within["stopping_word"] == stop
    beyond = post(server, "/completion", {**base, "stop": [*unused, stop]})
    assert beyond.status_code == 200  # the 65th is dropped, as KoboldCpp drops extras
    assert beyond.json()["content"] == free


def test_logit_bias_pairs_strings_and_false_ban(server: LiveServer) -> None:
    body = {"prompt": "The capital of France is", "n_predict": 4, "temperature": 0}
    free = post(server, "/completion", body).json()["content"]
    assert "Paris" in free
    paris = post(server, "/tokenize", {"content": " Paris"}).json()["tokens"]
    by_id = post(server, "/completion", {**body, "logit_bias": [[t, False] for t in paris]}).json()
    by_text = post(server, "/completion", {**body, "logit_bias": [[" Paris", False]]}).json()
    as_object = post(server, "/completion", {**body, "logit_bias": {str(paris[0]): -100}}).json()
    for answer in (by_id, by_text, as_object):
        assert "Paris" not in answer["content"]
    bad = post(server, "/completion", {**body, "logit_bias": [[1, 2, 3]]})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "logit_bias"


def test_samplers_list_turns_left_out_samplers_off(server: LiveServer) -> None:
    body = {"prompt": "Once upon a time", "n_predict": 2, "samplers": ["min_p", "temperature"], "top_k": 5}
    settings = post(server, "/completion", body).json()["generation_settings"]
    assert settings["samplers"] == ["min_p", "temperature"]
    assert settings["top_k"] == 0 and settings["top_p"] == 1.0 and settings["min_p"] == 0.05
    letters = post(server, "/completion", {**body, "samplers": "kt"}).json()["generation_settings"]
    assert letters["samplers"] == ["top_k", "temperature"] and letters["top_k"] == 5


def test_n_probs_gives_completion_probabilities(server: LiveServer) -> None:
    body = {"prompt": "The sky is", "n_predict": 4, "temperature": 0, "n_probs": 3}
    answer = post(server, "/completion", body).json()
    probs = answer["completion_probabilities"]
    assert len(probs) == answer["tokens_predicted"]
    assert "".join(p["token"] for p in probs) == answer["content"]
    for p in probs:
        assert len(p["top_logprobs"]) == 3 and p["top_logprobs"][0]["token"] == p["token"]  # greedy
        assert p["logprob"] <= 0 and p["probs"][0]["tok_str"] == p["token"]  # the pre-b4400 shape too
    streamed = stream_completion(server, {**body, "stream": True})
    assert sum(len(c.get("completion_probabilities", [])) for c in streamed[:-1]) == len(probs)


def test_token_prompt_json_schema_and_seed(server: LiveServer) -> None:
    ids = post(server, "/tokenize", {"content": "The capital of France is"}).json()["tokens"]
    as_text = post(
        server, "/completion", {"prompt": "The capital of France is", "n_predict": 4, "temperature": 0}
    )
    as_ids = post(server, "/completion", {"prompt": ids, "n_predict": 4, "temperature": 0})
    assert as_ids.json()["content"] == as_text.json()["content"]
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string", "enum": ["Paris", "Tokyo"]}},
        "required": ["city"],
    }
    constrained = post(
        server, "/completion", {"prompt": "JSON:", "n_predict": 40, "json_schema": schema, "temperature": 0}
    )
    assert json.loads(constrained.json()["content"])["city"] in ("Paris", "Tokyo")
    grammar = 'root ::= "yes" | "no"'
    assert post(server, "/completion", {"prompt": "Is it?", "grammar": grammar}).json()["content"] in (
        "yes",
        "no",
    )
    seeded = {"prompt": "A story:", "n_predict": 8, "seed": 7, "temperature": 1.0}
    assert (
        post(server, "/completion", seeded).json()["content"]
        == post(server, "/completion", seeded).json()["content"]
    )


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"prompt": ["one", "two"]}, "prompt"),
        ({"prompt": "x", "grammar": 'root ::= "a"', "json_schema": {}}, "grammar"),
        ({"prompt": "x", "dry_sequence_breakers": "not json"}, "dry_sequence_breakers"),
        ({"prompt": "x", "temperature": -1}, "temperature"),
        ({"prompt": "x", "json_schema": {"": None}}, "response_format"),  # was a 500
    ],
)
def test_bad_completion_bodies_are_400(server: LiveServer, body: dict[str, Any], param: str) -> None:
    r = post(server, "/completion", body)
    assert r.status_code == 400 and r.json()["error"]["param"] == param


def test_tokenize_detokenize_round_trip(server: LiveServer) -> None:
    text = "Hello world! こんにちは、世界。"
    tokens = post(server, "/tokenize", {"content": text}).json()["tokens"]
    assert tokens and all(isinstance(t, int) for t in tokens)
    assert post(server, "/detokenize", {"tokens": tokens}).json()["content"] == text
    pieces = post(server, "/tokenize", {"content": "Hello world", "with_pieces": True}).json()["tokens"]
    assert "".join(p["piece"] for p in pieces) == "Hello world" and pieces[0]["id"] == tokens[0]
    assert post(server, "/detokenize", {"tokens": [10**9]}).status_code == 400


def test_vllm_and_aphrodite_tokenize(server: LiveServer) -> None:
    text = "A prompt SillyTavern counts."
    llama = post(server, "/tokenize", {"content": text}).json()["tokens"]
    vllm = post(server, "/tokenize", {"model": MODEL, "prompt": text}).json()
    assert vllm == {"count": len(llama), "max_model_len": 4096, "tokens": llama, "token_strs": None}
    assert post(server, "/v1/tokenize", {"model": MODEL, "prompt": text}).json() == vllm
    assert post(server, "/v1/detokenize", {"tokens": llama}).json()["prompt"] == text
    assert post(server, "/detokenize", {"model": MODEL, "tokens": llama}).json()["prompt"] == text
    chat = post(server, "/tokenize", {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}]}).json()
    assert chat["count"] > 3  # the chat template's tokens are counted too
    neither = post(server, "/tokenize", {"text": text})
    assert neither.status_code == 400 and "content" in neither.json()["error"]["message"]


def test_text_generation_webui_tokenizer_routes(server: LiveServer) -> None:
    info = httpx.get(server.url + "/v1/internal/model/info").json()
    assert info["model_name"] == MODEL and info["lora_names"] == []
    text = "SillyTavern's Default type counts with this."
    encoded = post(server, "/v1/internal/encode", {"text": text}).json()
    assert (
        encoded["length"]
        == len(encoded["tokens"])
        == len(post(server, "/tokenize", {"content": text}).json()["tokens"])
    )
    assert post(server, "/v1/internal/token-count", {"text": text}).json() == {"length": encoded["length"]}
    assert post(server, "/v1/internal/decode", {"tokens": encoded["tokens"]}).json() == {"text": text}


def test_props_and_slots(server: LiveServer) -> None:
    props = httpx.get(server.url + "/props").json()
    assert props["default_generation_settings"]["n_ctx"] == 4096
    assert props["default_generation_settings"]["params"]["temperature"] == 0.8
    assert props["total_slots"] == 1 and props["model_path"].endswith(".gguf")
    assert "<|im_start|>" in props["chat_template"] and props["build_info"].startswith("kataribe-")
    slots = httpx.get(server.url + "/slots").json()
    assert len(slots) == 1 and slots[0]["id"] == 0 and slots[0]["n_ctx"] == 4096
    assert slots[0]["is_processing"] is False


FUZZ_FIELDS = [
    "prompt",
    "n_predict",
    "stream",
    "samplers",
    "stop",
    "seed",
    "temperature",
    "top_k",
    "top_p",
    "min_p",
    "typical_p",
    "repeat_penalty",
    "dry_multiplier",
    "dry_sequence_breakers",
    "mirostat",
    "logit_bias",
    "n_probs",
    "grammar",
    "json_schema",
    "ignore_eos",
    "content",
    "tokens",
    "with_pieces",
    "messages",
    "text",
]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    route=st.sampled_from(["/completion", "/tokenize", "/detokenize", "/v1/tokenize", "/v1/internal/encode"]),
    body=st.dictionaries(st.sampled_from(FUZZ_FIELDS), values, max_size=6),
)
def test_random_bodies_never_500(server: LiveServer, route: str, body: dict[str, Any]) -> None:
    r = post(server, route, {**body, "n_predict": 2})  # short: the point is the parsing
    assert r.status_code < 500, (route, body, r.text)
    if r.status_code >= 400:
        assert r.json()["error"]["message"]


def test_n_predict_past_the_context_stops_at_its_end(server: LiveServer) -> None:
    """As llama-server and Ollama do: a prompt that fits, with n_predict / num_predict larger than
    the room left, generates until the context is full (it was a 400)."""
    n_ctx = httpx.get(server.url + "/props").json()["default_generation_settings"]["n_ctx"]
    prompt = "cat " * (n_ctx - 24)
    size = len(httpx.post(server.url + "/tokenize", json={"content": prompt}).json()["tokens"])
    assert n_ctx - 40 < size < n_ctx - 8
    body = {"prompt": prompt, "n_predict": 64, "temperature": 0, "ignore_eos": True}
    r = httpx.post(server.url + "/completion", json=body, timeout=300)
    assert r.status_code == 200, r.text[:300]
    assert r.json()["stop_type"] == "limit" and 0 < r.json()["tokens_predicted"] <= n_ctx - size
    ollama = {"model": MODEL, "prompt": prompt, "raw": True, "stream": False, "options": {"num_predict": 64}}
    r = httpx.post(server.url + "/api/generate", json=ollama, timeout=300)
    assert r.status_code == 200, r.text[:300]
    assert r.json()["done_reason"] == "length" and 0 < r.json()["eval_count"] <= n_ctx - size
