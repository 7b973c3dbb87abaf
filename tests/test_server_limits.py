"""No input stalls the server: /health keeps answering within a second, polled every 100 ms, while a
card with a hostile regex key is chatting and while a 100 MB body is uploaded; over-size bodies get
a 413 (by Content-Length before any byte is sent, and by counting a chunked body); a 10 MB prompt is
refused without being tokenized.

The server is a real ``kataribe serve`` process: a freeze there cannot freeze the test as well.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from kataribe.api.body_limits import MAX_JSON_BYTES, MAX_RESTORE_BYTES, MULTIPART_OVERHEAD_BYTES, body_limit
from kataribe.api.roleplay.services import MAX_UPLOAD_BYTES
from kataribe.formats.png import read_text_chunks, rewrite_text_chunks
from tests.conftest import VENV_BIN, free_port, wait_http
from tests.sse import iter_sse

MiB = 1024 * 1024
HOSTILE_KEY = r"/(.|\s)*QQQ/"


class Server:
    def __init__(self, url: str, port: int) -> None:
        self.url = url
        self.port = port


@pytest.fixture(scope="module")
def kataribe(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    port = free_port()
    env = {**os.environ, "KATARIBE_DATA_DIR": str(tmp_path_factory.mktemp("limits"))}
    proc = subprocess.Popen(
        [str(VENV_BIN / "kataribe"), "serve", "--port", str(port), "--threads", "2", "--ctx-size", "2048"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/health", timeout=120, proc=proc)
        yield Server(f"http://127.0.0.1:{port}", port)
    finally:
        proc.kill()  # a frozen server does not stop when asked
        proc.wait(30)


class HealthWatch:
    """Polls /health every 100 ms in a thread; ``worst`` is the slowest answer (a failure counts as
    the poll's timeout)."""

    def __init__(self, url: str) -> None:
        self.url = url + "/health"
        self.times: list[float] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        with httpx.Client(timeout=1.0) as client:
            while not self._stop.is_set():
                start = time.perf_counter()
                try:
                    ok = client.get(self.url).status_code == 200
                    if not ok:
                        self.failures.append("status")
                except httpx.HTTPError as exc:
                    self.failures.append(type(exc).__name__)
                self.times.append(time.perf_counter() - start)
                self._stop.wait(0.1)

    def __enter__(self) -> HealthWatch:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def check(self, at_least: int = 3) -> None:
        assert len(self.times) >= at_least, self.times
        assert not self.failures, f"/health failed {len(self.failures)} times: {self.failures[:3]}"
        assert max(self.times) < 1.0, f"/health took {max(self.times):.2f} s"


def hostile_card(png: Path) -> bytes:
    """SillyTavern's Seraphina with one more lorebook entry: a key that backtracks for ages in ``re``."""
    data = png.read_bytes()
    chara = next(t.text for t in read_text_chunks(data) if t.keyword == "chara")
    card = json.loads(base64.b64decode(chara))
    entries = card["data"]["character_book"]["entries"]
    entries.append(
        {**entries[0], "id": 999, "keys": [HOSTILE_KEY], "content": "QQQ lore", "comment": "hostile"}
    )
    encoded = base64.b64encode(json.dumps(card).encode()).decode()
    return rewrite_text_chunks(data, drop=lambda k: k.lower() in ("chara", "ccv3"), add=[("chara", encoded)])


def test_health_answers_while_a_card_with_a_hostile_regex_key_is_chatting(
    kataribe: Server, fixtures_dir: Path
) -> None:
    with httpx.Client(base_url=kataribe.url + "/api", timeout=60) as api:
        files = {"file": ("Seraphina.png", hostile_card(fixtures_dir / "sillytavern" / "Seraphina.png"))}
        character = api.post("/characters/import", files=files)
        assert character.status_code == 201, character.text
        chat = api.post("/chats", json={"character_id": character.json()["id"]}).json()
        assert api.patch(f"/chats/{chat['id']}", json={"settings": {"max_tokens": 6}}).status_code == 200
        text = ("a" * 60 + " " * 8) * 60  # a few KB of letters and runs of spaces
        with HealthWatch(kataribe.url) as watch:
            body = {"text": text, "generate": True}
            with api.stream("POST", f"/chats/{chat['id']}/messages", json=body) as reply:
                assert reply.status_code == 200
                events = list(iter_sse(reply))
            prompt = api.get(f"/chats/{chat['id']}/prompt")
        watch.check()
        assert [k for k, _ in events if k == "message"], events
        assert prompt.status_code == 200
        assert "hostile" not in [e["comment"] for e in prompt.json()["lore"]]
        # the key is not refused, it runs (in linear time): with QQQ in the chat, the entry fires
        api.post(f"/chats/{chat['id']}/messages", json={"text": text + "QQQ", "generate": False})
        fired = api.get(f"/chats/{chat['id']}/prompt").json()["lore"]
        assert "hostile" in [e["comment"] for e in fired]


def test_health_answers_while_a_100_mb_body_is_uploaded(kataribe: Server) -> None:
    def chunked_prompt() -> Iterator[bytes]:  # no Content-Length: the server has to count
        yield b'{"max_tokens": 4, "prompt": "'
        for _ in range(100):
            yield b"a " * (MiB // 2)
            time.sleep(0.01)
        yield b'"}'

    with HealthWatch(kataribe.url) as watch:
        refused = httpx.post(
            kataribe.url + "/v1/completions",
            content=chunked_prompt(),
            headers={"Content-Type": "application/json"},
            timeout=60,
        )
        sized = httpx.post(
            kataribe.url + "/v1/completions",
            content=b'{"prompt": "' + b"a" * (100 * MiB) + b'"}',
            headers={"Content-Type": "application/json"},
            timeout=60,
        )
    watch.check()
    for response in (refused, sized):
        assert response.status_code == 413
        body = response.json()
        assert "16 MiB" in body["error"]["message"]
        assert body["detail"]["msg"] == body["error"]["message"]  # KoboldCpp clients read detail.msg


def raw_request(port: int, head: str, chunks: Iterable[bytes] = ()) -> tuple[int, dict[str, Any]]:
    """Sends a request head and ``chunks`` over a plain socket; the status and JSON body of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(head.encode() + b"\r\n")
        for chunk in chunks:
            sock.sendall(chunk)
        answer = b""
        while b"\r\n\r\n" not in answer:
            answer += sock.recv(65536)
        header, _, rest = answer.partition(b"\r\n\r\n")
        length = next(
            int(line.split(b":", 1)[1])
            for line in header.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        while len(rest) < length:
            rest += sock.recv(65536)
    return int(header.split()[1]), json.loads(rest)


def head(path: str, *fields: str) -> str:
    return "\r\n".join(
        [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json", *fields, ""]
    )


def test_a_body_over_the_limit_is_refused_by_content_length_before_it_is_sent(kataribe: Server) -> None:
    start = time.perf_counter()
    status, body = raw_request(kataribe.port, head("/v1/completions", f"Content-Length: {500 * MiB}"))
    assert time.perf_counter() - start < 1.0
    assert status == 413 and body["error"]["type"] == "invalid_request_error"
    status, body = raw_request(kataribe.port, head("/api/v1/generate", f"Content-Length: {500 * MiB}"))
    assert status == 413 and "larger than" in body["detail"]["msg"]
    status, _ = raw_request(kataribe.port, head("/api/backup/restore", f"Content-Length: {700 * MiB}"))
    assert status == 413


def test_a_chunked_body_is_refused_once_its_counted_bytes_pass_the_limit(kataribe: Server) -> None:
    def chunks() -> Iterator[bytes]:
        piece = b"a" * MiB
        for _ in range(17):
            yield b"%x\r\n%s\r\n" % (len(piece), piece)
        yield b"0\r\n\r\n"

    status, body = raw_request(
        kataribe.port, head("/v1/chat/completions", "Transfer-Encoding: chunked"), chunks()
    )
    assert status == 413
    assert "16 MiB" in body["error"]["message"]


def test_uploads_have_their_own_larger_limit(kataribe: Server) -> None:
    junk = b"x" * (20 * MiB)  # over the JSON limit, under the upload limit: read, then refused as junk
    lore = httpx.post(kataribe.url + "/api/lorebooks/import", files={"file": ("big.json", junk)}, timeout=60)
    assert lore.status_code == 400, lore.text
    huge = b"x" * (MAX_UPLOAD_BYTES + 2 * MiB)
    card = httpx.post(kataribe.url + "/api/characters/import", files={"file": ("big.png", huge)}, timeout=60)
    assert card.status_code == 413
    assert "65 MiB" in card.json()["error"]["message"]


def test_each_route_gets_its_limit() -> None:
    assert body_limit("/v1/completions") == MAX_JSON_BYTES == 16 * MiB
    assert body_limit("/api/characters/12/sprites/zip") == MAX_UPLOAD_BYTES + MULTIPART_OVERHEAD_BYTES
    assert body_limit("/api/personas/3/avatar") == MAX_UPLOAD_BYTES + MULTIPART_OVERHEAD_BYTES
    assert body_limit("/api/chats/import") == MAX_UPLOAD_BYTES + MULTIPART_OVERHEAD_BYTES
    assert body_limit("/api/backup/restore") == MAX_RESTORE_BYTES + MULTIPART_OVERHEAD_BYTES
    assert 512 * MiB == MAX_RESTORE_BYTES  # the backup restore relies on it
    assert body_limit("/api/characters/import/x") == MAX_JSON_BYTES


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/completions", {"prompt": "hello world " * 900_000, "max_tokens": 4}),
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hello world " * 900_000}]}),
    ],
)
def test_a_10_mb_prompt_is_refused_before_it_is_tokenized(kataribe: Server, path: str, body: Any) -> None:
    payload = json.dumps(body, ensure_ascii=False).encode()
    assert 10 * MiB < len(payload) < MAX_JSON_BYTES
    start = time.perf_counter()
    answer = httpx.post(kataribe.url + path, content=payload, headers={"Content-Type": "application/json"})
    elapsed = time.perf_counter() - start
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["code"] == "context_length_exceeded"
    assert "at least" in answer.json()["detail"]["msg"]
    assert elapsed < 1.0, f"{elapsed:.2f} s"


def test_a_10_mb_koboldcpp_prompt_is_cut_from_the_start_before_it_is_tokenized(kataribe: Server) -> None:
    # KoboldCpp keeps the newest tokens of a prompt over the context: only that tail is tokenized
    def generate(prompt: str) -> float:
        body = {"prompt": prompt + "\nThe end.", "max_length": 1, "max_context_length": 16}
        start = time.perf_counter()
        answer = httpx.post(
            kataribe.url + "/api/v1/generate",
            content=json.dumps(body, ensure_ascii=False).encode(),
            headers={"Content-Type": "application/json"},
            timeout=120,
        )
        assert answer.status_code == 200, answer.text
        assert isinstance(answer.json()["results"][0]["text"], str)
        return time.perf_counter() - start

    short = generate("こんにちは" * 100)  # the same work but for reading and tokenizing a long prompt
    with HealthWatch(kataribe.url) as watch:
        long = generate("こんにちは" * 700_000)  # 10 MB of JSON: tokenizing it all takes 9 s and more
    watch.check(at_least=1)
    assert long < short + 3.0, f"{long:.2f} s against {short:.2f} s for a short prompt"
