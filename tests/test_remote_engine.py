"""The remote engine against a real OpenAI-compatible peer: llama-cpp-python's server on the same GGUF."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from openai import OpenAI

from kataribe.api.app import create_app
from kataribe.engine.base import ChatMessage, GenerationRequest, SamplingParams, TextDelta
from kataribe.engine.remote import RemoteConfig, RemoteEngine, estimate_tokens, split_base_url
from kataribe.engine.remote_request import build_payload
from kataribe.errors import InvalidRequest, ModelLoadError
from kataribe.settings import Settings
from tests.conftest import LiveServer, free_port, wait_http

pytestmark = pytest.mark.peer
GREEDY = SamplingParams(temperature=0)


@pytest.fixture(scope="module")
def peer(model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log = tmp_path_factory.mktemp("peer") / "peer.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "llama_cpp.server",
                "--model",
                str(model_path),
                "--n_ctx",
                "2048",
                "--n_threads",
                "2",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--model_alias",
                "peer-smol",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_http(f"http://127.0.0.1:{port}/v1/models", timeout=90, proc=proc)
            yield f"http://127.0.0.1:{port}"
        finally:
            proc.terminate()
            proc.wait(15)


@pytest.fixture(scope="module")
def remote(peer: str) -> Iterator[RemoteEngine]:
    eng = RemoteEngine(RemoteConfig(base_url=peer + "/v1"))
    yield eng
    eng.close()


def collect(eng: RemoteEngine, req: GenerationRequest) -> tuple[str, object]:
    stream = eng.generate(req)
    text = ""
    done = None
    for event in stream:
        if isinstance(event, TextDelta):
            text += event.text
        else:
            done = event
    return text, done


def test_discovers_the_server_and_its_model(remote: RemoteEngine) -> None:
    assert remote.model_name == "peer-smol"
    assert remote.kind == "llama-cpp-python"


def test_chat_streams_and_reports_usage(remote: RemoteEngine) -> None:
    req = GenerationRequest(messages=[ChatMessage("user", "Say hello.")], max_tokens=10, sampling=GREEDY)
    text, done = collect(remote, req)
    assert text and done.text == text  # type: ignore[attr-defined]
    assert done.finish_reason in ("length", "stop")  # type: ignore[attr-defined]
    # llama-cpp-python's server sends no usage when streaming: the reply is counted with its
    # tokenizer, and the chat prompt (its template is the server's) is flagged as an estimate.
    assert done.usage.completion_tokens == 10 and done.usage.estimated  # type: ignore[attr-defined]
    assert done.usage.as_openai()["estimated"] is True  # type: ignore[attr-defined]
    assert done.timings.predicted_ms >= 0  # type: ignore[attr-defined]


def test_completion_counts_are_exact_with_the_server_tokenizer(remote: RemoteEngine, engine: object) -> None:
    prompt = "The capital of France is"
    _text, done = collect(remote, GenerationRequest(prompt=prompt, max_tokens=6, sampling=GREEDY))
    assert not done.usage.estimated  # type: ignore[attr-defined]
    assert done.usage.prompt_tokens == len(engine.tokenize(prompt))  # type: ignore[attr-defined]


def test_same_text_as_the_embedded_engine_greedy(remote: RemoteEngine, engine: object) -> None:
    req = GenerationRequest(prompt="The capital of France is", max_tokens=8, sampling=GREEDY)
    remote_text, _ = collect(remote, req)
    local = engine.generate(req).collect()  # type: ignore[attr-defined]
    assert remote_text == local.text


def test_token_counts_come_from_the_server_exactly(remote: RemoteEngine, engine: object) -> None:
    counted = remote.count_tokens("こんにちは、語り部です。")
    assert not counted.estimated
    assert counted.ids == engine.tokenize("こんにちは、語り部です。")  # type: ignore[attr-defined]


def test_detokenize_uses_the_servers_own_detokenizer(remote: RemoteEngine, engine: object) -> None:
    text = "こんにちは、語り部です。"
    assert remote.detokenize(engine.tokenize(text)) == text  # type: ignore[attr-defined]


def test_stop_strings_and_cancel(remote: RemoteEngine) -> None:
    req = GenerationRequest(prompt="1, 2, 3, 4, 5,", max_tokens=20, sampling=GREEDY, stop=[" 7"])
    text, _done = collect(remote, req)
    assert " 7" not in text and "6" in text
    stream = remote.generate(
        GenerationRequest(prompt="Story:", max_tokens=1000, sampling=SamplingParams(seed=1))
    )
    n = 0
    for event in stream:
        if isinstance(event, TextDelta):
            n += 1
            if n == 2:
                stream.cancel()
        else:
            assert event.finish_reason == "cancelled"
    assert n < 100


def test_sampler_names_are_mapped_per_server(remote: RemoteEngine) -> None:
    req = GenerationRequest(
        prompt="x", max_tokens=3, sampling=SamplingParams(repeat_penalty=1.2, top_k=7, min_p=0.1)
    )
    _route, body = remote.payload(req)
    assert body["repeat_penalty"] == 1.2 and "repetition_penalty" not in body
    assert body["top_k"] == 7 and body["min_p"] == 0.1
    remote.kind = "vllm"
    try:
        route, body = remote.payload(
            GenerationRequest(
                messages=[ChatMessage("user", "x")], sampling=req.sampling, grammar='root ::= "a"'
            )
        )
    finally:
        remote.kind = "llama-cpp-python"
    assert route.endswith("/chat/completions")
    assert body["repetition_penalty"] == 1.2 and "repeat_penalty" not in body
    assert body["structured_outputs"] == {"grammar": 'root ::= "a"'}


ROLEPLAY_SAMPLERS = SamplingParams(
    dry_multiplier=0.8,
    dry_sequence_breakers=["\n", "*"],
    xtc_probability=0.5,
    xtc_threshold=0.15,
    top_n_sigma=1.5,
    dynatemp_range=0.5,
    mirostat=2,
)


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        (
            "llama-server",
            {
                "dry_multiplier": 0.8,
                "dry_sequence_breakers": ["\n", "*"],
                "xtc_probability": 0.5,
                "xtc_threshold": 0.15,
                "top_n_sigma": 1.5,
                "dynatemp_range": 0.5,
                "mirostat": 2,
            },
        ),
        ("koboldcpp", {"dry_multiplier": 0.8, "nsigma": 1.5, "xtc_probability": 0.5, "mirostat": 2}),
        ("openai", {"dry_multiplier": 0.8, "top_n_sigma": 1.5, "mirostat_tau": 5.0}),
    ],
)
def test_role_play_samplers_go_out_under_each_servers_names(kind: str, expected: dict[str, object]) -> None:
    _route, body = build_payload(
        GenerationRequest(prompt="x", sampling=ROLEPLAY_SAMPLERS),
        kind=kind,
        model_name="m",
        api_base="http://h/v1",
    )
    assert {key: body[key] for key in expected} == expected
    assert ("top_n_sigma" in body) == (kind != "koboldcpp")


def test_samplers_that_are_off_are_not_sent() -> None:
    _route, body = build_payload(
        GenerationRequest(prompt="x"), kind="llama-server", model_name="m", api_base="h"
    )
    assert not {k for k in body if k.startswith(("dry_", "xtc_", "mirostat", "dynatemp", "top_n_sigma"))}


@pytest.mark.parametrize("kind", ["vllm", "llama-cpp-python"])
def test_a_server_without_dry_gets_a_clear_refusal_not_a_silent_ignore(kind: str) -> None:
    with pytest.raises(InvalidRequest, match=rf"\({kind}\) has no DRY"):
        build_payload(
            GenerationRequest(prompt="x", sampling=SamplingParams(dry_multiplier=1.0)),
            kind=kind,
            model_name="m",
            api_base="h",
        )


def test_banned_strings_go_to_koboldcpp_and_are_refused_where_a_server_has_none() -> None:
    request = GenerationRequest(prompt="x", sampling=SamplingParams(banned_strings=["shivers", ""]))
    _route, body = build_payload(request, kind="koboldcpp", model_name="m", api_base="h")
    assert body["banned_tokens"] == ["shivers"]
    for kind in ("llama-server", "vllm", "llama-cpp-python"):
        with pytest.raises(InvalidRequest, match="banned strings"):
            build_payload(request, kind=kind, model_name="m", api_base="h")


def test_mirostat_reaches_llama_cpp_pythons_server_as_mirostat_mode(remote: RemoteEngine) -> None:
    sampling = SamplingParams(mirostat=2, mirostat_tau=3.0, seed=5)
    _route, body = remote.payload(GenerationRequest(prompt="x", sampling=sampling))
    assert body["mirostat_mode"] == 2 and "mirostat" not in body
    text, done = collect(
        remote, GenerationRequest(prompt="Once upon a time", max_tokens=8, sampling=sampling)
    )
    assert text and done.finish_reason in ("length", "stop")  # type: ignore[attr-defined]
    refused, failed = collect(
        remote, GenerationRequest(prompt="x", max_tokens=4, sampling=SamplingParams(dry_multiplier=1.0))
    )
    assert refused == "" and failed.finish_reason == "error"  # type: ignore[attr-defined]
    assert "has no DRY" in str(failed.error)  # type: ignore[attr-defined]


def test_kataribe_serves_a_remote_model_to_the_openai_client(remote: RemoteEngine, tmp_path: Path) -> None:
    port = free_port()
    live = LiveServer(create_app(Settings(data_dir=tmp_path, port=port), remote), port).start()
    try:
        client = OpenAI(base_url=live.url + "/v1", api_key="x", max_retries=0)
        chunks = list(
            client.chat.completions.create(
                model="peer-smol",
                messages=[{"role": "user", "content": "Hi"}],
                max_tokens=8,
                stream=True,
                stream_options={"include_usage": True},
            )
        )
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
        health = httpx.get(live.url + "/health").json()
        assert health["engine"] == "remote:llama-cpp-python"
    finally:
        live.stop()


def test_remote_failures_become_clear_http_errors(remote: RemoteEngine, tmp_path: Path) -> None:
    port = free_port()
    live = LiveServer(create_app(Settings(data_dir=tmp_path, port=port), remote), port).start()
    try:
        # llama-cpp-python's server answers an over-long prompt with an empty 200 stream
        body = {"prompt": "word " * 3000, "max_tokens": 5}
        r = httpx.post(live.url + "/v1/completions", json=body, timeout=60)
        assert r.status_code == 502 and "remote server" in r.json()["error"]["message"]
        # streamed, the response has started (headers go out before the prompt is processed):
        # the failure is the stream's error event
        streamed = httpx.post(live.url + "/v1/completions", json={**body, "stream": True}, timeout=60)
        assert streamed.status_code == 200
        events = [line[6:] for line in streamed.text.splitlines() if line.startswith("data: ")]
        assert "remote server" in json.loads(events[0])["error"]["message"] and events[-1] == "[DONE]"
        kobold = httpx.post(
            live.url + "/api/extra/generate/stream",
            json={"prompt": "word " * 3000, "max_length": 5},
            timeout=60,
        )
        assert kobold.status_code == 200 and "event: error" in kobold.text and "remote server" in kobold.text
        last = [line for line in kobold.text.splitlines() if line.startswith("data: ")][-1]
        assert json.loads(last[6:]) == {"token": "", "finish_reason": "length"}
        assert httpx.get(live.url + "/health").status_code == 200
    finally:
        live.stop()


def test_unreachable_server_fails_at_start_with_a_message() -> None:
    with pytest.raises(ModelLoadError) as err:
        RemoteEngine(RemoteConfig(base_url=f"http://127.0.0.1:{free_port()}/v1"))
    assert "Cannot reach" in err.value.message
    with pytest.raises(ModelLoadError):
        split_base_url("ftp://example")


def test_estimates_are_marked_and_count_japanese_per_character() -> None:
    assert estimate_tokens("語り部") == 3
    assert 2 <= estimate_tokens("hello world") <= 4
    assert InvalidRequest  # the remote tokenizer error type exists for servers without one
