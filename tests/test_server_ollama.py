"""Ollama's API, as SillyTavern's Ollama type, Open WebUI and the official ``ollama`` client call it."""

from __future__ import annotations

import json
from typing import Any

import httpx
import ollama
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import LiveServer
from tests.test_server_fuzz import values

MODEL = "SmolLM2-135M-Instruct.Q4_1"
TAGGED = f"{MODEL}:latest"


def post(server: LiveServer, path: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(server.url + path, json=body, timeout=120)


def ndjson(server: LiveServer, path: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    with httpx.stream("POST", server.url + path, json=body, timeout=120) as r:
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"].startswith("application/x-ndjson")
        return [json.loads(line) for line in r.iter_lines() if line.strip()]


@pytest.fixture(scope="module")
def client(server: LiveServer) -> ollama.Client:
    return ollama.Client(host=server.url)


def st_ollama_body(prompt: str, model: str, **options: Any) -> dict[str, Any]:
    """SillyTavern 1.12's Ollama text-completion request (PEERS.md)."""
    return {
        "model": model,
        "prompt": prompt,
        "stream": True,
        "raw": True,
        "keep_alive": -1,
        "options": {
            "num_predict": 16,
            "temperature": 0.7,
            "top_k": 40,
            "top_p": 0.9,
            "min_p": 0.05,
            "typical_p": 1,
            "repeat_penalty": 1.1,
            "repeat_last_n": 64,
            "presence_penalty": 0,
            "frequency_penalty": 0,
            "tfs_z": 1,
            "mirostat": 0,
            "mirostat_tau": 5,
            "mirostat_eta": 0.1,
            "num_ctx": 8192,
            "stop": ["\nUser:"],
            "seed": -1,
            **options,
        },
    }


def test_sillytavern_ollama_replay(server: LiveServer) -> None:
    tags = httpx.get(server.url + "/api/tags").json()
    (entry,) = tags["models"]
    assert entry["name"] == entry["model"] == TAGGED
    assert entry["size"] > 0 and len(entry["digest"]) == 64
    assert entry["details"]["format"] == "gguf" and entry["details"]["family"] == "llama"
    assert entry["details"]["quantization_level"] == "Q4_1"
    lines = ndjson(server, "/api/generate", st_ollama_body("User: Say hello.\nAssistant:", entry["name"]))
    *parts, final = lines
    assert parts and all(p["done"] is False and p["model"] == TAGGED for p in parts)
    text = "".join(p["response"] for p in parts)
    assert text.strip() and "\nUser:" not in text
    assert final["done"] is True and final["response"] == "" and final["done_reason"] in ("stop", "length")
    assert 0 < final["eval_count"] <= 16 and final["prompt_eval_count"] > 0
    assert final["total_duration"] >= final["eval_duration"] > 0  # nanoseconds
    assert final["created_at"].endswith("Z")


def test_streamed_japanese_equals_non_streamed(server: LiveServer) -> None:
    body = {
        "model": MODEL,
        "prompt": "日本の首都は東京です。京都は",
        "raw": True,
        "options": {"num_predict": 30, "temperature": 0},
    }
    post(server, "/api/generate", {**body, "stream": False})  # both answers below start from the cache
    whole = post(server, "/api/generate", {**body, "stream": False}).json()
    lines = ndjson(server, "/api/generate", body)  # stream is Ollama's default
    assert "".join(line["response"] for line in lines) == whole["response"]
    assert whole["eval_count"] == lines[-1]["eval_count"]


def test_num_ctx_cuts_a_raw_prompt_from_the_start(server: LiveServer) -> None:
    long_prompt = "one two three four five six seven eight nine ten. " * 40
    answer = post(
        server,
        "/api/generate",
        {
            "model": MODEL,
            "prompt": long_prompt,
            "raw": True,
            "stream": False,
            "options": {"num_ctx": 64, "num_predict": 4},
        },
    ).json()
    assert answer["done"] is True and answer["eval_count"] > 0
    assert answer["prompt_eval_count"] <= 64


def test_chat_streams_messages(server: LiveServer) -> None:
    body = {
        "model": TAGGED,
        "messages": [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Say hi."}],
        "options": {"num_predict": 8, "temperature": 0},
    }
    post(server, "/api/chat", {**body, "stream": False})  # both answers below start from the cache
    lines = ndjson(server, "/api/chat", body)
    assert all(line["message"]["role"] == "assistant" for line in lines)
    streamed = "".join(line["message"]["content"] for line in lines)
    final = lines[-1]
    assert final["done"] is True and final["message"]["content"] == ""
    assert {"done_reason", "prompt_eval_duration", "eval_count", "load_duration"} <= final.keys()
    whole = post(server, "/api/chat", {**body, "stream": False}).json()
    assert whole["message"]["content"] == streamed


def test_format_json_constrains_the_answer(server: LiveServer) -> None:
    options = {"num_predict": 12, "temperature": 0}
    body = {"model": MODEL, "prompt": "Answer in JSON.", "stream": False, "options": options}
    free_json = post(server, "/api/generate", {**body, "format": "json"}).json()["response"]
    assert free_json.lstrip().startswith("{")  # grammar-constrained (cut at num_predict)
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
    answer = post(server, "/api/generate", {**body, "format": schema}).json()["response"]
    assert isinstance(json.loads(answer)["ok"], bool)


def test_official_client_list_show_ps(client: ollama.Client) -> None:
    listed = client.list()
    assert [m.model for m in listed.models] == [TAGGED]
    assert listed.models[0].details is not None and listed.models[0].details.parameter_size == "135M"
    shown = client.show(TAGGED)
    assert shown.modelinfo is not None and shown.modelinfo["llama.context_length"] == 4096
    assert shown.modelinfo["general.architecture"] == "llama"
    assert shown.template and "<|im_start|>" in shown.template
    assert shown.modelfile and "FROM " in shown.modelfile and "num_ctx" in (shown.parameters or "")
    assert shown.capabilities == ["completion"]
    running = client.ps()
    assert [m.model for m in running.models] == [TAGGED] and running.models[0].context_length == 4096


def test_official_client_generate_and_chat(client: ollama.Client) -> None:
    options = {"num_predict": 6, "temperature": 0}
    client.generate(model=MODEL, prompt="The capital of France is", raw=True, options=options)  # cache it
    generated = client.generate(model=MODEL, prompt="The capital of France is", raw=True, options=options)
    assert generated.done and generated.response and generated.eval_count == 6
    streamed = client.generate(
        model=MODEL, prompt="The capital of France is", raw=True, options=options, stream=True
    )
    assert "".join(part.response or "" for part in streamed) == generated.response
    templated = client.generate(model=MODEL, prompt="Say hi.", system="You are terse.", options=options)
    assert templated.response and (templated.prompt_eval_count or 0) > 10  # system + chat template tokens
    messages = [{"role": "user", "content": "Name a colour."}]
    client.chat(model=TAGGED, messages=messages, options=options)
    answer = client.chat(model=TAGGED, messages=messages, options=options)
    assert answer.message.role == "assistant" and answer.message.content
    parts = list(client.chat(model=TAGGED, messages=messages, options=options, stream=True))
    assert parts[-1].done and "".join(p.message.content or "" for p in parts) == answer.message.content


def test_official_client_errors(client: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as missing:
        client.generate(model="llama3:8b", prompt="hi")
    assert missing.value.status_code == 404 and "llama3:8b" in missing.value.error
    with pytest.raises(ollama.ResponseError) as pulled:
        client.pull("llama3")
    assert pulled.value.status_code == 501 and "model library" in pulled.value.error
    with pytest.raises(ollama.ResponseError) as image:
        client.generate(model=MODEL, prompt="What is this?", images=["aGVsbG8="])
    assert image.value.status_code == 400 and "images" in image.value.error


def test_version_load_and_heartbeat(server: LiveServer) -> None:
    assert httpx.get(server.url + "/api/version").json()["version"].count(".") == 2
    loaded = post(server, "/api/generate", {"model": MODEL})
    assert loaded.json()["done"] is True and loaded.json()["done_reason"] == "load"
    unload = post(server, "/api/chat", {"model": MODEL, "messages": [], "keep_alive": 0, "stream": False})
    assert unload.json()["done_reason"] == "unload" and unload.json()["message"]["content"] == ""
    assert httpx.head(server.url + "/").status_code == 200
    page = httpx.get(server.url + "/")
    assert page.status_code == 200 and page.headers["content-type"].startswith(
        "text/html"
    )  # still the web app


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/pull"),
        ("POST", "/api/push"),
        ("POST", "/api/create"),
        ("DELETE", "/api/delete"),
        ("POST", "/api/copy"),
        ("POST", "/api/embed"),
        ("POST", "/api/embeddings"),
        ("POST", "/api/blobs/sha256:00"),
    ],
)
def test_management_calls_are_501(server: LiveServer, method: str, path: str) -> None:
    r = httpx.request(method, server.url + path, json={"model": "llama3"})
    assert r.status_code == 501
    assert isinstance(r.json()["error"], str) and r.json()["error"].startswith("Kataribe does not")


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"model": MODEL, "prompt": "x", "options": {"temperature": -1}}, "temperature"),
        ({"model": MODEL, "prompt": "x", "format": "yaml"}, "format"),
        ({"model": MODEL, "prompt": "x", "format": {"": None}}, "schema"),  # was a 500
        ({"model": MODEL, "prompt": "x", "template": "{{ .Prompt }}"}, "template"),
        ({"model": MODEL, "prompt": "x", "think": True}, "thinking"),
        ({"model": MODEL, "prompt": "x", "options": "hot"}, "options"),
    ],
)
def test_bad_generate_bodies_are_400_in_ollama_shape(
    server: LiveServer, body: dict[str, Any], words: str
) -> None:
    r = post(server, "/api/generate", body)
    assert r.status_code == 400 and words in r.json()["error"]
    assert set(r.json()) == {"error"}


def test_chat_with_tools_or_images_is_refused(server: LiveServer) -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {}}}]
    r = post(
        server, "/api/chat", {"model": MODEL, "messages": [{"role": "user", "content": "x"}], "tools": tools}
    )
    assert r.status_code == 400 and "tools" in r.json()["error"]
    pic = [{"role": "user", "content": "x", "images": ["aGVsbG8="]}]
    assert post(server, "/api/chat", {"model": MODEL, "messages": pic}).status_code == 400


FUZZ_FIELDS = [
    "model",
    "prompt",
    "messages",
    "options",
    "format",
    "raw",
    "system",
    "images",
    "think",
    "stream",
]
OPTION_FIELDS = [
    "num_ctx",
    "temperature",
    "top_k",
    "top_p",
    "min_p",
    "repeat_penalty",
    "seed",
    "stop",
    "mirostat",
]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    route=st.sampled_from(["/api/generate", "/api/chat", "/api/show"]),
    body=st.dictionaries(st.sampled_from(FUZZ_FIELDS), values, max_size=5),
    options=st.dictionaries(st.sampled_from(OPTION_FIELDS), values, max_size=3),
    named=st.booleans(),
)
def test_random_bodies_never_500(
    server: LiveServer, route: str, body: dict[str, Any], options: dict[str, Any], named: bool
) -> None:
    if body.get("options") is None:
        body["options"] = options
    if isinstance(body["options"], dict):
        body["options"] = {**body["options"], "num_predict": 2}  # short: the point is the parsing
    if named:
        body["model"] = MODEL
    r = post(server, route, body)
    assert r.status_code < 500, (route, body, r.text)
    if r.status_code >= 400:
        assert isinstance(r.json()["error"], str) and r.json()["error"]


@pytest.mark.parametrize("content_type", [None, "application/x-www-form-urlencoded", "text/plain"])
def test_curl_style_bodies_are_read_as_json(server: LiveServer, content_type: str | None) -> None:
    """Ollama's own examples use `curl -d '{...}'`, which sends a form content type (or none)."""
    body = json.dumps({"model": MODEL, "prompt": "Hi", "stream": False, "options": {"num_predict": 2}})
    headers = {"content-type": content_type} if content_type else {}
    r = httpx.post(server.url + "/api/generate", content=body.encode(), headers=headers, timeout=120)
    assert r.status_code == 200, r.text
    assert r.json()["done"] is True
    tags = httpx.post(server.url + "/api/show", content=json.dumps({"model": MODEL}), headers=headers)
    assert tags.status_code == 200, tags.text


@pytest.mark.parametrize("path", ["/api/generate", "/api/chat", "/api/show"])
def test_refused_at_the_edge_in_ollama_shape(server: LiveServer, path: str) -> None:
    """A lone surrogate (400) and an over-size body (413) are refused before routing, by middleware:
    Ollama clients still get ``{"error": "..."}`` (the official client showed the OpenAI dict)."""
    lone = b'{"model": "' + MODEL.encode() + b'", "prompt": "hi\\ud800", "messages": [], "name": "\\ud800"}'
    r = httpx.post(server.url + path, content=lone, headers={"content-type": "application/json"})
    assert r.status_code == 400 and set(r.json()) == {"error"}
    assert "unpaired surrogate" in r.json()["error"]
    huge = json.dumps({"model": MODEL, "prompt": "a" * (17 * 1024 * 1024)})
    r = httpx.post(server.url + path, content=huge, headers={"content-type": "application/json"}, timeout=60)
    assert r.status_code == 413 and set(r.json()) == {"error"}
    assert "larger than this route accepts" in r.json()["error"]


def test_official_client_reads_a_413_message(client: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as huge:
        client.generate(model=MODEL, prompt="a" * (17 * 1024 * 1024))
    assert huge.value.status_code == 413 and "larger than this route accepts" in huge.value.error


def test_stop_strings_beyond_the_limit_are_dropped(server: LiveServer) -> None:
    """As on the other routes (and KoboldCpp): the first 64 are used, the rest dropped, not a 400;
    150,000 stop strings had made every token 0.13 s slower."""
    letters = list("etaoinshrdlu ")
    stops = [f"\ue000never{i}" for i in range(64)] + letters
    r = post(
        server,
        "/api/generate",
        {
            "model": MODEL,
            "prompt": "Say hello.",
            "stream": False,
            "options": {"num_predict": 12, "temperature": 0, "stop": stops},
        },
    )
    assert r.status_code == 200, r.text
    assert any(ch in r.json()["response"] for ch in letters), r.json()  # the dropped ones did not stop it
