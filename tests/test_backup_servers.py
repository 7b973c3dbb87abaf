"""Backups between two real servers with fresh data dirs, at the size limits; a restore never stalls the
server; unreferenced assets and stale files are collected after deletes and at start."""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import insert

from kataribe.api.app import create_app
from kataribe.engine.llamacpp import EmbeddedEngine
from kataribe.settings import Settings
from kataribe.store.chats import ChatRepository
from kataribe.store.fields import MAX_TEXT_CHARS
from kataribe.store.models import Chat, Message
from tests.conftest import VENV_BIN, LiveServer, free_port, wait_http
from tests.hostile import png

BIG_SPRITE_BYTES = 15 * 1024 * 1024  # under the 16 MiB sprite limit


class Server:
    """A live server over the shared engine on its own data dir, with a client for its /api."""

    def __init__(self, engine: EmbeddedEngine, data_dir: Path) -> None:
        port = free_port()
        self.data_dir = data_dir
        self.app = create_app(Settings(data_dir=data_dir, port=port), engine)
        self.live = LiveServer(self.app, port).start()
        self.api = httpx.Client(base_url=self.live.url + "/api", timeout=300)

    def stop(self) -> None:
        self.api.close()
        self.live.stop()
        self.app.state.roleplay.ctx.close()


def start(servers: list[Server], engine: EmbeddedEngine, tmp_path: Path, name: str) -> Server:
    server = Server(engine, tmp_path / name)
    servers.append(server)
    return server


def fill_at_the_limits(api: httpx.Client) -> dict[str, Any]:
    """A character, a persona, a chat and a lorebook whose texts are at MAX_TEXT_CHARS, and a sprite
    of 15 MiB (a small picture in a big file)."""
    at = "あ" * (MAX_TEXT_CHARS - 1) + "!"
    character = api.post("/characters", json={"name": "Limit", "description": at}).json()
    persona = api.post("/personas", json={"name": "P", "description": at})
    assert persona.status_code == 201, persona.text[:200]
    chat = api.post("/chats", json={"character_id": character["id"]}).json()
    note = api.patch(f"/chats/{chat['id']}", json={"author_note": {"text": at}})
    assert note.status_code == 200, note.text[:200]
    message = api.post(f"/chats/{chat['id']}/messages", json={"text": at, "generate": False})
    assert message.status_code in (200, 201), message.text[:200]
    entries = [{"uid": 0, "keys": ["k"], "content": at}]
    book = api.post("/lorebooks", json={"name": "L", "data": {"entries": entries}})
    assert book.status_code == 201, book.text[:200]
    sprite_png = png(256, 256, padding=BIG_SPRITE_BYTES)
    sprite = api.post(
        f"/characters/{character['id']}/sprites", data={"label": "joy"}, files={"file": ("j.png", sprite_png)}
    )
    assert sprite.status_code == 201, sprite.text[:200]
    return {"character": character["id"], "chat": chat["id"], "sprite": sprite_png}


def test_a_backup_at_the_size_limits_restores_on_a_second_real_server_with_a_fresh_data_dir(
    engine: EmbeddedEngine, tmp_path: Path
) -> None:
    servers: list[Server] = []
    try:
        first = start(servers, engine, tmp_path, "first")
        made = fill_at_the_limits(first.api)
        backup = first.api.get("/backup")
        assert backup.status_code == 200
        assert len(backup.content) > BIG_SPRITE_BYTES

        second = start(servers, engine, tmp_path, "second")
        assert second.api.get("/models").json()["models"], "a fresh data dir has the built-in model"
        restored = second.api.post(
            "/backup/restore", files={"file": ("kataribe-backup.json", backup.content)}
        )
        assert restored.status_code == 200, restored.text[:300]
        assert restored.json()["characters"] == 1

        character = second.api.get("/characters").json()[0]
        card = second.api.get(f"/characters/{character['id']}").json()["card"]["data"]
        assert card["description"] == "あ" * (MAX_TEXT_CHARS - 1) + "!"
        sha = character["sprites"][0]["asset"]
        assert second.api.get(f"/assets/{sha}").content == made["sprite"]
        persona = second.api.get("/personas").json()[0]
        assert len(second.api.get(f"/personas/{persona['id']}").json()["description"]) == MAX_TEXT_CHARS
        chat = second.api.get("/chats").json()[0]
        view = second.api.get(f"/chats/{chat['id']}").json()
        assert len(view["author_note"]["text"]) == MAX_TEXT_CHARS
        assert [m["content"] for m in view["messages"]][-1] == "あ" * (MAX_TEXT_CHARS - 1) + "!"
        models = second.api.get("/models").json()["models"]
        assert [m["path"] for m in models] == [m["path"] for m in first.api.get("/models").json()["models"]]
        # and the restored library backs up again, byte for byte the same rows
        again = second.api.get("/backup")
        assert again.status_code == 200 and len(again.content) == pytest.approx(len(backup.content), rel=0.01)
    finally:
        for server in servers:
            server.stop()


def test_a_restore_keeps_the_load_settings_of_a_model_the_fresh_data_dir_already_has(
    engine: EmbeddedEngine, tmp_path: Path
) -> None:
    """The built-in model's row is not inserted twice, but how the user loads it (context, template)
    comes back with the backup; it was dropped with the row."""
    servers: list[Server] = []
    try:
        first = start(servers, engine, tmp_path, "first")
        model = first.api.get("/models").json()["models"][0]
        chosen = {"n_ctx": 4096, "chat_template": "{{ messages }}"}
        assert first.api.patch(f"/models/{model['id']}", json={"settings": chosen}).status_code == 200
        backup = first.api.get("/backup")
        second = start(servers, engine, tmp_path, "second")
        restored = second.api.post(
            "/backup/restore", files={"file": ("kataribe-backup.json", backup.content)}
        )
        assert restored.status_code == 200, restored.text[:300]
        models = second.api.get("/models").json()["models"]
        assert [(m["path"], m["settings"]) for m in models] == [(model["path"], chosen)]
    finally:
        for server in servers:
            server.stop()


def _long_chat(server: Server, messages: int) -> None:
    """A chat of ``messages`` messages written straight into the server's database (fast to make,
    slow to restore: every message is renumbered one by one)."""
    ctx = server.app.state.roleplay.ctx
    character = server.api.post("/characters", json={"name": "Talker"}).json()["id"]
    with ctx.db.session() as s:
        chat_id = ChatRepository(s).create_chat(title="long", character_id=character).id
        rows = [
            {
                "id": n,
                "chat_id": chat_id,
                "parent_id": n - 1 or None,
                "role": "user",
                "content": f"m{n} " * 20,
            }
            for n in range(1, messages + 1)
        ]
        s.execute(insert(Message), rows)
        s.get_one(Chat, chat_id).head_message_id = messages


def test_health_answers_within_a_second_while_a_large_restore_runs(
    engine: EmbeddedEngine, tmp_path: Path
) -> None:
    servers: list[Server] = []
    try:
        first = start(servers, engine, tmp_path, "big")
        _long_chat(first, 30_000)
        backup = first.api.get("/backup").content
        second = start(servers, engine, tmp_path, "fresh")

        result: dict[str, Any] = {}

        def restore() -> None:
            began = time.monotonic()
            response = second.api.post("/backup/restore", files={"file": ("b.json", backup)})
            result["status"] = response.status_code
            result["seconds"] = time.monotonic() - began

        worker = threading.Thread(target=restore)
        worker.start()
        slowest = 0.0
        with httpx.Client(base_url=second.live.url, timeout=30) as client:
            while worker.is_alive():
                began = time.monotonic()
                assert client.get("/health").status_code == 200
                slowest = max(slowest, time.monotonic() - began)
                time.sleep(0.05)
        worker.join()
        print(f"restore {result['seconds']:.1f} s, slowest /health {slowest * 1000:.0f} ms")
        assert result["status"] == 200
        assert result["seconds"] > 1.0, (
            f"the restore took {result['seconds']:.1f} s: too short to prove anything"
        )
        assert slowest < 1.0, f"/health took {slowest:.2f} s during a {result['seconds']:.1f} s restore"
    finally:
        for server in servers:
            server.stop()


def _age(path: Path, seconds: float = 3600) -> None:
    old = time.time() - seconds
    os.utime(path, (old, old))


def _asset_files(data_dir: Path) -> set[str]:
    return {p.name for p in (data_dir / "assets").rglob("*") if p.is_file()}


def test_assets_nothing_references_are_collected_after_a_delete_and_stale_files_at_start(
    engine: EmbeddedEngine, tmp_path: Path
) -> None:
    servers: list[Server] = []
    try:
        server = start(servers, engine, tmp_path, "gc")
        api = server.api
        kept = api.post("/characters", json={"name": "Kept"}).json()["id"]
        gone = api.post("/characters", json={"name": "Gone"}).json()["id"]
        shared, own = png(32, 32, padding=10), png(48, 48, padding=10)
        for character, image in ((kept, shared), (gone, shared), (gone, own)):
            label = "joy" if image is shared else "anger"
            api.post(
                f"/characters/{character}/sprites", data={"label": label}, files={"file": ("s.png", image)}
            )
        persona = api.post("/personas", json={"name": "P"}).json()["id"]
        avatar = api.put(f"/personas/{persona}/avatar", files={"file": ("a.png", png(64, 64))}).json()[
            "avatar"
        ]
        sprites = {s["label"]: s["asset"] for s in api.get(f"/characters/{gone}").json()["sprites"]}
        for path in (server.data_dir / "assets").rglob("*"):
            if path.is_file():
                _age(path)

        assert api.delete(f"/characters/{gone}").status_code == 204
        # the sprite only the deleted card used is gone, row and file; the shared one and the avatar stay
        assert api.get(f"/assets/{sprites['anger']}").status_code == 404
        assert sprites["anger"] not in _asset_files(server.data_dir)
        for sha in (sprites["joy"], avatar):
            assert api.get(f"/assets/{sha}").status_code == 200

        # what a killed import or restore leaves: a file no row lists, a half-written temporary file
        folder = server.data_dir / "assets" / "ab" / "cd"
        folder.mkdir(parents=True)
        orphan, temporary = folder / ("abcd" + "0" * 60), folder / ".tmp-killed"
        orphan.write_bytes(b"orphan")
        temporary.write_bytes(b"half")
        server.stop()
        servers.remove(server)

        restarted = start(servers, engine, tmp_path, "gc")
        assert not orphan.exists() and not temporary.exists()
        for sha in (sprites["joy"], avatar):
            assert restarted.api.get(f"/assets/{sha}").status_code == 200
    finally:
        for server in servers:
            server.stop()


def test_a_restore_killed_midway_leaves_no_stray_file_after_a_restart(
    engine: EmbeddedEngine, tmp_path: Path
) -> None:
    """SIGKILL a real ``kataribe serve`` while it writes a restore's files (rows inserted, nothing
    committed): the next start removes every file no row lists, and the restore then succeeds."""
    servers: list[Server] = []
    try:
        source = start(servers, engine, tmp_path, "source")
        character = source.api.post("/characters", json={"name": "Many sprites"}).json()["id"]
        for n in range(60):
            image = png(64 + n, 64, padding=1024 * 1024)
            source.api.post(
                f"/characters/{character}/sprites", data={"label": f"s{n}"}, files={"file": ("s.png", image)}
            )
        backup = source.api.get("/backup").content

        target = tmp_path / "killed"
        port = free_port()
        env = {**os.environ, "KATARIBE_DATA_DIR": str(target)}
        command = [
            str(VENV_BIN / "kataribe"),
            "serve",
            "--port",
            str(port),
            "--threads",
            "1",
            "--ctx-size",
            "512",
        ]
        proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_http(f"http://127.0.0.1:{port}/health", proc=proc)

            def restore() -> None:
                with contextlib.suppress(httpx.HTTPError):
                    httpx.post(
                        f"http://127.0.0.1:{port}/api/backup/restore",
                        files={"file": ("b.json", backup)},
                        timeout=120,
                    )

            worker = threading.Thread(target=restore)
            worker.start()
            deadline = time.monotonic() + 120
            while not _asset_files(target) and time.monotonic() < deadline:
                time.sleep(0.002)
            proc.kill()
            worker.join()
        finally:
            proc.kill()
            proc.wait(20)
        left = _asset_files(target)
        assert left, "the restore wrote no file before it was killed"

        restarted = start(servers, engine, tmp_path, "killed")
        assert restarted.api.get("/characters").json() == []
        assert _asset_files(target) == set(), "files no row lists are left after the restart"
        restored = restarted.api.post("/backup/restore", files={"file": ("b.json", backup)})
        assert restored.status_code == 200, restored.text[:300]
        assert len(_asset_files(target)) == 60
    finally:
        for server in servers:
            server.stop()
