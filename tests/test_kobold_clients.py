"""KoboldCpp's API as hosted KoboldAI Lite, EasyNovelAssistant and SillyTavern's KoboldAI Classic use it,
replaying their request bodies (design/PEERS.md): placeholders, the end-token ban, multi-user check and
abort, token counts, connect probes, and a first answer fast enough for ENA's 50 ms timeout."""

from __future__ import annotations

import http.client
import json
import os
import random
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from kataribe.engine.base import ChatMessage
from kataribe.engine.llamacpp import EmbeddedEngine
from tests.conftest import VENV_BIN, LiveServer, free_port
from tests.sse import iter_sse

pytestmark = pytest.mark.model


def lite_body(prompt: str, **overrides: Any) -> dict[str, Any]:
    """What hosted KoboldAI Lite v339 posts in instruct mode, its default (PEERS.md)."""
    body: dict[str, Any] = {
        "n": 1,
        "max_context_length": 4096,
        "max_length": 80,
        "rep_pen": 1.07,
        "temperature": 0.75,
        "top_p": 0.92,
        "top_k": 100,
        "top_a": 0,
        "typical": 1,
        "tfs": 1,
        "rep_pen_range": 360,
        "rep_pen_slope": 0.7,
        "sampler_order": [6, 0, 1, 3, 4, 2, 5],
        "memory": "",
        "trim_stop": True,
        "genkey": "KCPP4242",
        "min_p": 0,
        "dynatemp_range": 0,
        "dynatemp_exponent": 1,
        "smoothing_factor": 0,
        "nsigma": 0,
        "banned_tokens": [],
        "render_special": False,
        "logprobs": False,
        "replace_instruct_placeholders": True,
        "presence_penalty": 0,
        "logit_bias": {},
        "quiet": True,
        "stop_sequence": ["{{[INPUT]}}", "{{[OUTPUT]}}"],
        "use_default_badwordsids": False,
        "bypass_eos": False,
        "sampler_seed": 7,
        "prompt": prompt,
    }
    return body | overrides


def count(server: LiveServer, text: str, special: bool = True) -> int:
    r = httpx.post(
        server.url + "/api/extra/tokencount", json={"prompt": text, "special": special}, timeout=30
    )
    return int(r.json()["value"])


# -- instruct placeholders (item 15) -----------------------------------------------------------------


def test_hosted_lite_instruct_placeholders_become_the_models_chat_tags(
    server: LiveServer, engine: EmbeddedEngine
) -> None:
    body = lite_body("{{[INPUT]}}Say hello.{{[OUTPUT]}}")
    r = httpx.post(server.url + "/api/v1/generate", json=body, timeout=120)
    assert r.status_code == 200, r.text
    result = r.json()["results"][0]
    # the model was given the chat template's own turn, braces gone (SmolLM2: ChatML, no BOS)
    chatml = "<|im_start|>user\nSay hello.<|im_end|>\n<|im_start|>assistant\n"
    assert engine.render_chat([ChatMessage("user", "Say hello.")]).endswith(chatml)
    assert result["prompt_tokens"] == count(server, chatml)
    text = result["text"]
    assert text.strip() and "{{[" not in text and "<|im" not in text
    # it ended its turn (end token or the real tag as a stop), not at the length limit
    assert result["completion_tokens"] < body["max_length"]


def test_placeholders_with_end_forms_and_a_system_turn(server: LiveServer, engine: EmbeddedEngine) -> None:
    prompt = "{{[SYSTEM]}}You are terse.{{[SYSTEM_END]}}{{[INPUT]}}Name a colour.{{[INPUT_END]}}{{[OUTPUT]}}"
    r = httpx.post(server.url + "/api/v1/generate", json=lite_body(prompt, max_length=16), timeout=120)
    rendered = engine.render_chat(
        [ChatMessage("system", "You are terse."), ChatMessage("user", "Name a colour.")]
    )
    assert r.json()["results"][0]["prompt_tokens"] == count(server, rendered)


def test_streamed_lite_request_gets_the_same_prompt(server: LiveServer) -> None:
    body = lite_body("{{[INPUT]}}Say hello.{{[OUTPUT]}}", max_length=12)
    with httpx.stream("POST", server.url + "/api/extra/generate/stream", json=body, timeout=120) as r:
        tokens = [data["token"] for _e, data in iter_sse(r)]
    assert "{{[" not in "".join(tokens)
    perf = httpx.get(server.url + "/api/extra/perf").json()
    chatml = "<|im_start|>user\nSay hello.<|im_end|>\n<|im_start|>assistant\n"
    assert perf["last_input_count"] == count(server, chatml)


def test_lite_advertises_a_version_that_sends_placeholders(server: LiveServer) -> None:
    version = httpx.get(server.url + "/api/extra/version").json()["version"]
    assert tuple(map(int, version.split("."))) >= (1, 88)


# -- use_default_badwordsids (item 15) ----------------------------------------------------------------

QUICK = "<|im_start|>user\nAnswer with one word: is water wet?<|im_end|>\n<|im_start|>assistant\n"


def story_body(**overrides: Any) -> dict[str, Any]:
    """Lite's story mode: no placeholders, the end token banned through use_default_badwordsids."""
    return (
        lite_body(
            QUICK,
            max_length=24,
            temperature=0,
            rep_pen=1,
            stop_sequence=[],
            replace_instruct_placeholders=False,
            use_default_badwordsids=True,
        )
        | overrides
    )


def test_default_badwordsids_runs_to_max_length(server: LiveServer) -> None:
    def tokens(body: dict[str, Any]) -> int:
        r = httpx.post(server.url + "/api/v1/generate", json=body, timeout=120)
        return int(r.json()["results"][0]["completion_tokens"])

    assert tokens(story_body(use_default_badwordsids=False)) < 24  # the model ends this turn early
    assert tokens(story_body()) == 24
    assert tokens(story_body(ban_eos_token=False)) < 24  # an explicit ban_eos_token wins


# -- check and abort only touch KoboldCpp jobs (item 11) ---------------------------------------------


def test_abort_and_check_without_genkey_leave_a_v1_stream_alone(server: LiveServer) -> None:
    chunks: list[dict[str, Any]] = []
    first = threading.Event()

    def stream() -> None:
        body = {
            "prompt": "Once upon a time",
            "max_tokens": 60,
            "ignore_eos": True,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        with httpx.stream("POST", server.url + "/v1/completions", json=body, timeout=120) as r:
            for line in r.iter_lines():
                if line.startswith("data: ") and line != "data: [DONE]":
                    chunks.append(json.loads(line[6:]))
                    first.set()

    t = threading.Thread(target=stream)
    t.start()
    assert first.wait(60)
    assert httpx.post(server.url + "/api/extra/abort", json={}).json() == {
        "success": "false",
        "done": "false",
    }
    assert httpx.post(server.url + "/api/extra/abort").json()["success"] == "false"
    assert httpx.get(server.url + "/api/extra/generate/check").json() == {"results": [{"text": ""}]}
    assert httpx.post(server.url + "/api/extra/generate/check", json={}).json()["results"][0]["text"] == ""
    t.join(120)
    finish = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert finish[-1] == "length" and chunks[-1]["usage"]["completion_tokens"] == 60


def test_easynovelassistant_polls_check_without_genkey_and_aborts(server: LiveServer) -> None:
    body = {  # ENA's "generate forever" request (PEERS.md)
        "max_context_length": 4096,
        "max_length": 512,
        "prompt": "Chapter One\n\nThe rain had not stopped for three days, and the old lighthouse keeper",
        "quiet": False,
        "stop_sequence": [],
        "rep_pen": 1.1,
        "rep_pen_range": 320,
        "rep_pen_slope": 0.7,
        "temperature": 0.7,
        "tfs": 1,
        "top_a": 0,
        "top_k": 100,
        "top_p": 0.92,
        "typical": 1,
        "min_p": 0,
        "sampler_order": [6, 0, 1, 3, 4, 2, 5],
        "sampler_seed": 3,
        "ban_eos_token": True,
    }
    result: dict[str, Any] = {}

    def generate() -> None:
        r = httpx.post(server.url + "/api/v1/generate", json=body, timeout=180)
        result.update(r.json()["results"][0])

    t = threading.Thread(target=generate)
    t.start()
    preview = ""
    deadline = time.monotonic() + 60
    while len(preview) < 20 and time.monotonic() < deadline:
        time.sleep(0.2)
        preview = httpx.get(server.url + "/api/extra/generate/check").json()["results"][0]["text"]
    assert len(preview) >= 20, "check without a genkey never showed ENA's text"
    assert httpx.post(server.url + "/api/extra/abort").json() == {"success": "true", "done": "true"}
    t.join(60)
    assert not t.is_alive()
    assert str(result["text"]).startswith(preview) and int(result["completion_tokens"]) < 512


# -- small ones (item 19) ----------------------------------------------------------------------------


def test_tokencount_honours_special(server: LiveServer) -> None:
    assert count(server, "<|im_start|>", special=True) == 1
    assert count(server, "<|im_start|>", special=False) > 1
    ids = httpx.post(server.url + "/api/extra/tokencount", json={"prompt": "<|im_start|>", "special": False})
    assert len(ids.json()["ids"]) == ids.json()["value"]


def test_lite_connect_probes_get_koboldcpps_answers(server: LiveServer) -> None:
    sd = httpx.get(server.url + "/sdapi/v1/sd-models")
    assert sd.status_code == 200 and sd.json() == []
    story = httpx.post(server.url + "/api/extra/preloadstory")
    assert story.status_code == 200 and story.json() == {}


def _unique_long_prompt(words: int) -> str:
    """A long prompt no cache has seen (the KV cache would otherwise skip its processing)."""
    rng = random.Random(time.time_ns())
    vocab = ["river", "stone", "lantern", "orchard", "harbour", "meadow", "cinder", "willow", "copper"]
    return f"{rng.random()}\n" + " ".join(rng.choice(vocab) for _ in range(words))


def _time_stream(url: str, body: dict[str, Any], is_token: Any) -> tuple[float, float]:
    """(seconds to the response headers, seconds to the first generated text)."""
    started = time.perf_counter()
    with httpx.stream("POST", url, json=body, timeout=180) as r:
        headers_at = time.perf_counter() - started
        assert r.status_code == 200, r.read()
        for line in r.iter_lines():
            data = line[6:] if line.startswith("data: ") else None
            if data and data != "[DONE]" and is_token(json.loads(data)):
                return headers_at, time.perf_counter() - started
    raise AssertionError("no text came")


LONG_WORDS = 900


def _assert_headers_come_first(headers_at: float, token_at: float) -> None:
    assert token_at > 0.4, f"the prompt was processed too fast ({token_at:.2f} s) to tell"
    assert headers_at < token_at / 2, f"headers after {headers_at:.2f} s, first text after {token_at:.2f} s"


@pytest.mark.parametrize("route", ["/v1/completions", "/v1/chat/completions", "/api/extra/generate/stream"])
def test_stream_headers_come_before_the_prompt_is_processed(server: LiveServer, route: str) -> None:
    prompt = _unique_long_prompt(LONG_WORDS)
    if route == "/v1/chat/completions":
        body: dict[str, Any] = {
            "messages": [{"role": "user", "content": prompt}],
            "max_tokens": 4,
            "stream": True,
            "ignore_eos": True,
        }
        is_token: Any = lambda d: bool(d["choices"] and d["choices"][0]["delta"].get("content"))  # noqa: E731
    elif route == "/v1/completions":
        body = {"prompt": prompt, "max_tokens": 4, "stream": True, "ignore_eos": True}
        is_token = lambda d: bool(d["choices"] and d["choices"][0]["text"])  # noqa: E731
    else:
        body = {"prompt": prompt, "max_length": 4, "ban_eos_token": True}
        is_token = lambda d: bool(d.get("token"))  # noqa: E731
    _assert_headers_come_first(*_time_stream(server.url + route, body, is_token))


def _reply_began(data: dict[str, Any]) -> bool:
    """A token, or the stored reply when the model ended at once (not the echoed user message)."""
    return "text" in data or data.get("role") == "assistant"


def test_role_play_stream_headers_come_before_the_prompt_is_processed(server: LiveServer) -> None:
    api = server.url + "/api"
    hero = httpx.post(
        api + "/characters", json={"name": "Archivist", "description": _unique_long_prompt(LONG_WORDS)}
    ).json()
    chat = httpx.post(api + "/chats", json={"character_id": hero["id"]}).json()
    httpx.patch(api + f"/chats/{chat['id']}", json={"settings": {"max_tokens": 4}})
    body = {"text": "Hello?"}
    timed = _time_stream(api + f"/chats/{chat['id']}/messages", body, _reply_began)
    _assert_headers_come_first(*timed)


def _timed_get(port: int, path: str) -> tuple[float, Any]:
    """(milliseconds from connecting to the whole answer, the JSON answer)."""
    started = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("GET", path)
    r = conn.getresponse()
    answer = json.loads(r.read())
    elapsed = (time.perf_counter() - started) * 1000
    conn.close()
    assert r.status == 200
    return elapsed, answer


def test_the_first_request_after_start_is_fast(tmp_path: Path) -> None:
    """EasyNovelAssistant asks GET /api/v1/model once at launch and gives up after 50 ms."""
    port = free_port()
    env = {**os.environ, "KATARIBE_DATA_DIR": str(tmp_path)}
    args = [str(VENV_BIN / "kataribe"), "serve", "--port", str(port), "--threads", "1", "--ctx-size", "512"]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while True:  # the port opens; no HTTP request before the one we time
            assert proc.poll() is None and time.monotonic() < deadline
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.05)
        first_ms, answer = _timed_get(port, "/api/v1/model")
        assert answer["result"].startswith("koboldcpp/")
        later_ms = min(_timed_get(port, "/api/v1/model")[0] for _ in range(3))  # how loaded the machine is
        # idle here: 60-76 ms before the warm-up, 3-7 ms after (under load: 210 ms before, 13 ms after)
        assert first_ms < min(50, later_ms + 25), f"first {first_ms:.0f} ms, then {later_ms:.0f} ms"
    finally:
        proc.terminate()
        proc.wait(20)
