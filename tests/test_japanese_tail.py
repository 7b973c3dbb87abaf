"""A Japanese reply cut by max_tokens in the middle of a character, over real HTTP on every route:
no U+FFFD at the end, the text a whole-character prefix of the longer reply, streamed == not."""

from __future__ import annotations

import codecs
from typing import Any

import httpx
import pytest
from openai import OpenAI

from kataribe.engine.base import GenerationRequest, SamplingParams, TextDelta
from kataribe.engine.llamacpp import EmbeddedEngine
from tests.conftest import LiveServer
from tests.sse import iter_sse

CHAT = [{"role": "user", "content": "日本の昔話を日本語で書いてください。"}]
PROMPT = "昔々、ある山奥の村に、"
LONGEST = 40
MODEL = "SmolLM2-135M-Instruct.Q4_1"


def whole_characters(raw: bytes) -> str:
    """The text of ``raw`` up to its last complete character (what a cut reply must show)."""
    return codecs.getincrementaldecoder("utf-8")(errors="replace").decode(raw, final=False)


def cut_lengths(pieces: list[bytes]) -> list[int]:
    """The reply lengths (in tokens) that end part-way through a character's bytes."""
    return [
        n
        for n in range(1, len(pieces))
        if len(whole_characters(b"".join(pieces[:n])).encode()) < len(b"".join(pieces[:n]))
    ]


def openai_client(server: LiveServer) -> OpenAI:
    return OpenAI(base_url=server.url + "/v1", api_key="not-needed", max_retries=0)


def chat(server: LiveServer, max_tokens: int, *, stream: bool) -> str:
    args: dict[str, Any] = {"model": MODEL, "messages": CHAT, "max_tokens": max_tokens, "temperature": 0}
    client = openai_client(server)
    if not stream:
        reply = client.chat.completions.create(**args, extra_body={"ignore_eos": True})
        assert reply.choices[0].finish_reason == "length"
        return reply.choices[0].message.content or ""
    chunks = client.chat.completions.create(**args, stream=True, extra_body={"ignore_eos": True})
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def completion(server: LiveServer, max_tokens: int, *, stream: bool) -> str:
    args: dict[str, Any] = {"model": MODEL, "prompt": PROMPT, "max_tokens": max_tokens, "temperature": 0}
    client = openai_client(server)
    if not stream:
        return client.completions.create(**args, extra_body={"ignore_eos": True}).choices[0].text
    chunks = client.completions.create(**args, stream=True, extra_body={"ignore_eos": True})
    return "".join(c.choices[0].text for c in chunks if c.choices)


def kobold(server: LiveServer, max_length: int, *, stream: bool) -> str:
    body = {"prompt": PROMPT, "max_length": max_length, "temperature": 0, "ban_eos_token": True}
    if not stream:
        r = httpx.post(server.url + "/api/v1/generate", json=body, timeout=120)
        assert r.status_code == 200, r.text
        return str(r.json()["results"][0]["text"])
    with httpx.stream("POST", server.url + "/api/extra/generate/stream", json=body, timeout=120) as resp:
        return "".join(data.get("token", "") for kind, data in iter_sse(resp) if kind == "message")


def test_chat_cut_inside_a_character_ends_on_the_last_whole_one(server: LiveServer) -> None:
    r = httpx.post(
        server.url + "/v1/chat/completions",
        json={
            "messages": CHAT,
            "max_tokens": LONGEST,
            "temperature": 0,
            "ignore_eos": True,
            "logprobs": True,
            "top_logprobs": 0,
        },
        timeout=120,
    )
    pieces = [bytes(entry["bytes"]) for entry in r.json()["choices"][0]["logprobs"]["content"]]
    assert len(pieces) == LONGEST
    cuts = cut_lengths(pieces)
    assert len(cuts) >= 3, "the model no longer splits Japanese characters over tokens; pick another prompt"
    for n in [*cuts[:2], cuts[-1]]:
        expected = whole_characters(b"".join(pieces[:n]))
        text = chat(server, n, stream=False)
        assert "\ufffd" not in text
        assert text == expected, n
        assert chat(server, n, stream=True) == text, n


@pytest.fixture(scope="module")
def prompt_cuts(engine: EmbeddedEngine) -> tuple[list[bytes], list[int]]:
    """The greedy continuation of PROMPT, token by token, and the lengths that cut a character."""
    request = GenerationRequest(
        prompt=PROMPT, max_tokens=LONGEST, sampling=SamplingParams(temperature=0), logprobs=0, ban_eos=True
    )
    done_pieces: list[bytes] = []
    for event in engine.generate(request):
        if isinstance(event, TextDelta):
            done_pieces.extend(bytes(entry.bytes) for entry in event.logprobs)
    return done_pieces, cut_lengths(done_pieces)


@pytest.mark.parametrize("route", [completion, kobold], ids=["v1-completions", "kobold-generate"])
def test_text_routes_never_end_in_half_a_character(
    server: LiveServer, route: Any, prompt_cuts: tuple[list[bytes], list[int]]
) -> None:
    pieces, cuts = prompt_cuts
    assert len(cuts) >= 2, "the model no longer splits Japanese characters over tokens; pick another prompt"
    for n in [cuts[0], cuts[-1]]:
        text = route(server, n, stream=False)
        assert "\ufffd" not in text, (n, text)
        assert text == whole_characters(b"".join(pieces[:n])), n
        assert route(server, n, stream=True) == text, n
