"""The OpenAI-compatible API, driven by the official openai client against a live server."""

from __future__ import annotations

import json
import threading
import time

import httpx
import openai
import pytest
from openai import OpenAI

from tests.conftest import LiveServer

MODEL = "SmolLM2-135M-Instruct.Q4_1"


@pytest.fixture()
def client(server: LiveServer) -> OpenAI:
    return OpenAI(base_url=server.url + "/v1", api_key="not-needed", max_retries=0)


def test_models_lists_the_loaded_model(client: OpenAI) -> None:
    assert [m.id for m in client.models.list()] == [MODEL]


def test_chat_stream_with_official_client(client: OpenAI) -> None:
    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Say hello."}],
        stream=True,
        max_tokens=16,
        temperature=0,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert text.strip()
    assert finishes in (["length"], ["stop"])
    usage = chunks[-1].usage
    assert usage is not None and usage.completion_tokens > 0 and usage.prompt_tokens > 0
    final = next(c for c in chunks if c.choices and c.choices[0].finish_reason)
    timings = final.model_extra["timings"]  # type: ignore[index]
    assert timings["predicted_n"] == usage.completion_tokens
    assert timings["prompt_n"] + timings["cache_n"] == usage.prompt_tokens


def test_chat_non_stream_has_usage_and_timings(client: OpenAI) -> None:
    r = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Hi"}], max_tokens=8
    )
    assert r.choices[0].message.content
    assert r.usage is not None and r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    assert "predicted_per_second" in r.model_extra["timings"]  # type: ignore[index]


def test_completion_stream_and_logprobs(client: OpenAI) -> None:
    parts = list(client.completions.create(model=MODEL, prompt="Once upon a time", max_tokens=8, stream=True))
    assert "".join(p.choices[0].text for p in parts if p.choices)
    r = client.completions.create(model=MODEL, prompt="The sky is", max_tokens=4, logprobs=2, temperature=0)
    lp = r.choices[0].logprobs
    assert lp is not None and len(lp.tokens or []) == 4 and len(lp.top_logprobs or []) == 4


def test_chat_logprobs(client: OpenAI) -> None:
    r = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Hi"}],
        max_tokens=4,
        logprobs=True,
        top_logprobs=2,
        temperature=0,
    )
    content = r.choices[0].logprobs.content  # type: ignore[union-attr]
    assert content and len(content[0].top_logprobs) == 2


def test_json_schema_response_format(client: OpenAI) -> None:
    schema = {"type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"]}
    r = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "What is 2+2? Answer in JSON."}],
        max_tokens=20,
        response_format={"type": "json_schema", "json_schema": {"name": "a", "schema": schema}},
        temperature=0,
    )
    assert isinstance(json.loads(r.choices[0].message.content or "")["answer"], int)
    r = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "JSON please"}],
        max_tokens=20,
        response_format={"type": "json_object"},
    )
    assert r.choices[0].message.content.lstrip().startswith("{")  # type: ignore[union-attr]


def test_extra_sampler_fields_are_accepted(client: OpenAI) -> None:
    r = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Hi"}],
        max_tokens=4,
        seed=3,
        stop=["\n\n"],
        presence_penalty=0.5,
        frequency_penalty=0.2,
        logit_bias={"0": -100},
        extra_body={
            "top_k": 20,
            "min_p": 0.1,
            "typical_p": 0.9,
            "repeat_penalty": 1.1,
            "repetition_penalty": 1.1,
        },
    )
    assert r.choices[0].finish_reason in ("length", "stop")


def test_unknown_model_is_404_and_names_the_loaded_one(client: OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as err:
        client.chat.completions.create(model="gpt-4", messages=[{"role": "user", "content": "x"}])
    assert MODEL in str(err.value)


def test_prompt_longer_than_context_is_400(client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "word " * 6000}])
    assert "--ctx-size" in str(err.value)


@pytest.mark.parametrize(
    "body",
    [
        {"messages": [{"role": "user", "content": "x"}], "temperature": -1},
        {"messages": [{"role": "user", "content": "x"}], "n": 2},
        {"messages": [{"role": "user", "content": "x"}], "max_tokens": 0},
        {"messages": [{"role": "wizard", "content": "x"}]},
        {"messages": []},
        {"messages": "hello"},
        {"messages": [{"role": "user", "content": "x"}], "logit_bias": {"abc": 1}},
        {"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_schema"}},
        {"messages": [{"role": "user", "content": "x"}], "grammar": "root ::= ("},
        {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
        {"prompt": "x"},
    ],
)
def test_bad_requests_are_4xx_with_a_message(server: LiveServer, body: dict[str, object]) -> None:
    r = httpx.post(server.url + "/v1/chat/completions", json=body, timeout=30)
    assert 400 <= r.status_code < 500
    assert r.json()["error"]["message"]


def test_malformed_json_and_wrong_types_do_not_crash(server: LiveServer) -> None:
    for raw in (b"{bad", b"[]", b"null", b'{"prompt": 5}', "\udcff".encode("utf-8", "surrogatepass")):
        r = httpx.post(
            server.url + "/v1/completions",
            content=raw,
            headers={"content-type": "application/json"},
            timeout=30,
        )
        assert r.status_code == 400, raw
    assert httpx.get(server.url + "/health").json()["status"] == "ok"


def test_client_disconnect_cancels_its_generation(server: LiveServer) -> None:
    body = {
        "prompt": "Write a very long story about dragons:",
        "max_tokens": 3000,
        "stream": True,
        "temperature": 1.0,
    }
    with httpx.stream("POST", server.url + "/v1/completions", json=body, timeout=30) as resp:
        lines = resp.iter_lines()
        got = [next(lines) for _ in range(6)]
        assert any(line.startswith("data:") for line in got)
    deadline = time.monotonic() + 5
    while httpx.get(server.url + "/health").json()["queue"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert httpx.get(server.url + "/health").json()["queue"] == 0


def test_concurrent_clients_each_get_their_whole_stream(client: OpenAI) -> None:
    results: dict[int, tuple[str, int, str]] = {}

    def ask(i: int) -> None:
        stream = client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": f"Tell me fact number {i}."}],
            stream=True,
            max_tokens=20,
            stream_options={"include_usage": True},
            extra_body={"ignore_eos": True},
        )
        chunks = list(stream)
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        finish = next(c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason)
        results[i] = (text, chunks[-1].usage.completion_tokens, finish)  # type: ignore[union-attr]

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert sorted(results) == [0, 1, 2]
    for text, n, finish in results.values():
        # nobody was cut off: each stream ran to its own end with its whole text
        assert text and finish == "length" and n == 20


def test_disconnect_during_prompt_processing_cancels_before_the_first_token(server: LiveServer) -> None:
    long_prompt = " ".join(f"word{i}" for i in range(900))  # ~3,600 tokens: several seconds to evaluate
    body = {"prompt": long_prompt, "max_tokens": 50, "stream": True}
    with pytest.raises(httpx.ReadTimeout):
        # the first byte only comes after the prompt is processed; give up well before that
        httpx.post(server.url + "/v1/completions", json=body, timeout=httpx.Timeout(30, read=0.5))
    t0 = time.monotonic()
    while httpx.get(server.url + "/health").json()["queue"] and time.monotonic() - t0 < 10:
        time.sleep(0.05)
    assert time.monotonic() - t0 < 2.0  # cancelled mid-prompt, not after the whole evaluation
    r = httpx.post(server.url + "/v1/completions", json={"prompt": "Hi", "max_tokens": 2}, timeout=30)
    assert r.status_code == 200
