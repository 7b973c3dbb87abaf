"""The KoboldCpp-compatible API, as KoboldAI Lite, SillyTavern and EasyNovelAssistant use it."""

from __future__ import annotations

import threading
import time

import httpx

from tests.conftest import LiveServer
from tests.sse import iter_sse


def sse_messages(resp: httpx.Response) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for event, data in iter_sse(resp):
        assert event == "message"
        out.append(data)
    return out


def test_info_routes(server: LiveServer) -> None:
    get = lambda path: httpx.get(server.url + path).json()  # noqa: E731
    assert get("/api/v1/model")["result"] == "koboldcpp/SmolLM2-135M-Instruct.Q4_1"
    version = get("/api/extra/version")
    assert version["result"] == "KoboldCpp"
    assert tuple(map(int, version["version"].split("."))) >= (1, 48)  # SillyTavern enables min_p at 1.48
    assert get("/api/v1/info/version")["result"] == "1.2.5"
    assert get("/api/v1/config/max_context_length")["value"] == 4096
    assert get("/api/extra/true_max_context_length")["value"] == 4096
    assert get("/api/latest/model") == get("/api/v1/model")


def test_generate_round_trip(server: LiveServer) -> None:
    body = {
        "prompt": "The quick brown fox",
        "max_length": 8,
        "temperature": 0.7,
        "rep_pen": 1.1,
        "top_k": 40,
        "top_p": 0.9,
        "sampler_seed": 5,
        "use_story": False,
        "sampler_order": [6, 0, 1],
    }
    r = httpx.post(server.url + "/api/v1/generate", json=body, timeout=60)
    assert r.status_code == 200
    result = r.json()["results"][0]
    assert result["text"] and result["finish_reason"] in ("length", "stop")
    assert result["completion_tokens"] <= 8
    again = httpx.post(server.url + "/api/v1/generate", json=body, timeout=60).json()["results"][0]
    assert again["text"] == result["text"]  # same seed, same text
    perf = httpx.get(server.url + "/api/extra/perf").json()
    assert perf["total_gens"] >= 2 and perf["last_token_count"] == again["completion_tokens"]


def test_stop_sequence_is_trimmed_or_kept(server: LiveServer) -> None:
    base = {"prompt": "Q: What is 1+1?\nA: 2\nQ: What is 2+2?\nA:", "max_length": 30, "temperature": 0}
    free = httpx.post(server.url + "/api/v1/generate", json=base, timeout=60).json()["results"][0]["text"]
    stop = free.strip()[:3]
    trimmed = httpx.post(
        server.url + "/api/v1/generate", json={**base, "stop_sequence": [stop]}, timeout=60
    ).json()["results"][0]
    assert (
        stop not in trimmed["text"] and trimmed["finish_reason"] == "length"
    )  # KoboldCpp: stop seq is "length"
    kept = httpx.post(
        server.url + "/api/v1/generate",
        json={**base, "stop_sequence": [stop], "trim_stop": False},
        timeout=60,
    ).json()["results"][0]
    assert kept["text"].endswith(stop)


def test_stream_sse_format(server: LiveServer) -> None:
    body = {"prompt": "日本の首都は", "max_length": 10, "temperature": 0}
    with httpx.stream("POST", server.url + "/api/extra/generate/stream", json=body, timeout=60) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        msgs = sse_messages(r)
    assert all(m["finish_reason"] is None for m in msgs[:-1])
    assert msgs[-1] == {"token": "", "finish_reason": msgs[-1]["finish_reason"]}
    assert msgs[-1]["finish_reason"] in ("length", "stop")
    streamed = "".join(str(m["token"]) for m in msgs)
    whole = httpx.post(server.url + "/api/v1/generate", json=body, timeout=60).json()["results"][0]["text"]
    assert streamed == whole


def test_check_and_abort_with_genkey(server: LiveServer) -> None:
    body = {"prompt": "Write a long story:", "max_length": 2000, "genkey": "KCPP1234", "temperature": 1.0}
    result: dict[str, object] = {}

    def generate() -> None:
        result.update(
            httpx.post(server.url + "/api/v1/generate", json=body, timeout=120).json()["results"][0]
        )

    t = threading.Thread(target=generate)
    t.start()
    partial = ""
    deadline = time.monotonic() + 30
    while len(partial) < 20 and time.monotonic() < deadline:
        time.sleep(0.1)
        partial = httpx.post(server.url + "/api/extra/generate/check", json={"genkey": "KCPP1234"}).json()[
            "results"
        ][0]["text"]
    assert partial, "check never showed partial text"
    other = httpx.post(server.url + "/api/extra/abort", json={"genkey": "someone-else"}).json()
    assert other == {"success": "false", "done": "false"}
    aborted = httpx.post(server.url + "/api/extra/abort", json={"genkey": "KCPP1234"}).json()
    assert aborted == {"success": "true", "done": "true"}
    t.join(30)
    assert not t.is_alive()
    assert result["finish_reason"] == "length"
    assert str(result["text"]).startswith(partial)
    assert int(str(result["completion_tokens"])) < 2000


def test_abort_without_body_stops_the_current_generation(server: LiveServer) -> None:
    msgs: list[dict[str, object]] = []
    first_token = threading.Event()

    def stream() -> None:
        body = {"prompt": "Once", "max_length": 2000}
        with httpx.stream("POST", server.url + "/api/extra/generate/stream", json=body, timeout=120) as r:
            for _event, data in iter_sse(r):
                msgs.append(data)
                first_token.set()

    t = threading.Thread(target=stream)
    t.start()
    assert first_token.wait(30)
    assert (
        httpx.post(server.url + "/api/extra/abort").json()["success"] == "true"
    )  # SillyTavern sends no body
    t.join(30)
    assert not t.is_alive()
    assert msgs[-1]["finish_reason"] == "length" and len(msgs) < 2000


def test_tokencount(server: LiveServer) -> None:
    r = httpx.post(server.url + "/api/extra/tokencount", json={"prompt": "こんにちは世界"}).json()
    assert r["value"] == len(r["ids"]) > 0


def test_bad_generate_body_is_4xx_with_detail_msg(server: LiveServer) -> None:
    for body in ({"prompt": 5}, {"max_length": -1}, {"temperature": "hot"}, {"stop_sequence": "x" * 3}):
        r = httpx.post(server.url + "/api/v1/generate", json=body, timeout=30)
        assert r.status_code == 400, body
        assert r.json()["detail"]["msg"]


def test_form_encoded_body_is_read_as_json(server: LiveServer) -> None:
    r = httpx.post(
        server.url + "/api/extra/tokencount",
        content=b'{"prompt": "hello"}',
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 200 and r.json()["value"] > 0


def test_detokenize_gives_back_the_text_of_tokencount_ids(server: LiveServer) -> None:
    text = "語り部 tells stories: こんにちは。"
    ids = httpx.post(
        server.url + "/api/extra/tokencount", json={"prompt": text, "special": False}, timeout=30
    )
    back = httpx.post(server.url + "/api/extra/detokenize", json={"ids": ids.json()["ids"]}, timeout=30)
    assert back.status_code == 200 and back.json() == {"result": text, "success": True}
    bad = httpx.post(server.url + "/api/extra/detokenize", json={"ids": [10**9]}, timeout=30)
    assert bad.status_code == 400 and "vocabulary" in bad.text
