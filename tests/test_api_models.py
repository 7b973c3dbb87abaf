"""The model library over HTTP against a fake Hugging Face Hub: search, files, pull, fit, switch."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gguf
import httpx
import numpy as np
import pytest

from kataribe.api.app import create_app
from kataribe.engine.default_model import default_model_path
from kataribe.engine.llamacpp import EmbeddedConfig, EmbeddedEngine
from kataribe.settings import Settings
from tests.conftest import LiveServer, free_port
from tests.fakehub import FakeHub
from tests.sse import iter_sse

REPO = "kataribe-test/SmolLM2-135M-Instruct-GGUF"


def tiny_gguf(path: Path) -> Path:
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_context_length(4096)
    w.add_block_count(1)
    w.add_embedding_length(8)
    w.add_head_count(2)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0)
    w.add_tensor("w", np.zeros((4, 8), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeHub]:
    tiny = tiny_gguf(tmp_path_factory.mktemp("hubfiles") / "tiny.gguf")
    fake = FakeHub().start()
    fake.add_repo(
        REPO,
        {
            "SmolLM2-135M-Instruct.Q4_1.gguf": default_model_path(),
            "tiny-model.Q8_0.gguf": tiny,
            "README.md": b"# test",
        },
        downloads=42,
        likes=7,
    )
    fake.add_repo("someone/other-model-GGUF", {"other.Q4_K_M.gguf": tiny}, downloads=1)
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def live(hub: FakeHub, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    # its own engine: switching models closes the one it replaces
    engine = EmbeddedEngine(EmbeddedConfig(model_path=default_model_path(), n_ctx=2048, n_threads=2))
    data = tmp_path_factory.mktemp("models-data")
    port = free_port()
    settings = Settings(data_dir=data, port=port, hf_endpoint=hub.url, n_threads=2)
    server = LiveServer(create_app(settings, engine), port).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def api(live: LiveServer) -> httpx.Client:
    return httpx.Client(base_url=live.url + "/api", timeout=300)


def test_search_and_files_from_the_hub(api: httpx.Client) -> None:
    found = api.get("/hub/search", params={"q": "SmolLM2"}).json()
    assert [r["id"] for r in found] == [REPO]
    by_downloads = api.get("/hub/search", params={"sort": "downloads"}).json()
    assert by_downloads[0]["id"] == REPO
    groups = {g["name"]: g for g in api.get("/hub/files", params={"repo": REPO}).json()}
    assert {g["quant"] for g in groups.values()} == {"Q4_1", "Q8_0"}
    smol = next(g for g in groups.values() if g["quant"] == "Q4_1")
    assert smol["total_size"] == default_model_path().stat().st_size
    assert smol["fit"] in ("full_gpu", "partial_gpu", "cpu_only")
    assert api.get("/hub/files", params={"repo": "nobody/nothing"}).status_code == 404


def test_pull_streams_progress_then_registers_and_switches(api: httpx.Client, live: LiveServer) -> None:
    events: list[tuple[str, dict[str, Any]]] = []
    with api.stream(
        "POST", "/hub/pull", json={"repo_id": REPO, "file": "SmolLM2-135M-Instruct.Q4_1.gguf"}
    ) as r:
        events.extend(iter_sse(r))
    kinds = [k for k, _ in events]
    assert kinds[0] == "download" and "progress" in kinds and kinds[-2:] == ["model", "done"], kinds
    entry = events[-2][1]
    assert entry["repo_id"] == REPO and entry["managed"] and Path(entry["path"]).is_file()
    assert entry["sha256"] and Path(entry["path"]).stat().st_size == default_model_path().stat().st_size

    listed = api.get("/models").json()["models"]
    assert {m["id"] for m in listed} >= {entry["id"]}
    assert any(m["loaded"] for m in listed)

    fit = api.get(f"/models/{entry['id']}/fit").json()
    assert fit["kind"] in ("full_gpu", "partial_gpu", "cpu_only") and fit["n_ctx"] == 8192

    # remembered settings, then a switch at run time
    assert api.patch(f"/models/{entry['id']}", json={"settings": {"n_ctx": 1024}}).json()["settings"] == {
        "n_ctx": 1024
    }
    assert api.patch(f"/models/{entry['id']}", json={"settings": {"n_ctx": 3}}).status_code == 400
    loaded = api.post(f"/models/{entry['id']}/load").json()
    assert loaded["loaded"] is True
    health = httpx.get(live.url + "/health").json()
    assert health["n_ctx"] == 1024 and health["model"] == "SmolLM2-135M-Instruct.Q4_1"
    reply = httpx.post(live.url + "/v1/completions", json={"prompt": "Hello", "max_tokens": 3}, timeout=60)
    assert reply.status_code == 200 and reply.json()["choices"][0]["text"]
    # the loaded model cannot be removed; the built-in one comes back with its own settings
    assert api.delete(f"/models/{entry['id']}").status_code == 400
    built_in = next(m for m in api.get("/models").json()["models"] if "built in" in m["name"])
    api.post(f"/models/{built_in['id']}/load")
    assert httpx.get(live.url + "/health").json()["n_ctx"] == 8192
    assert api.delete(f"/models/{entry['id']}", params={"delete_file": True}).status_code == 204
    assert not Path(entry["path"]).exists()


def test_register_a_file_in_place_without_copying(api: httpx.Client, tmp_path: Path) -> None:
    tiny = tiny_gguf(tmp_path / "mine.Q8_0.gguf")
    m = api.post("/models", json={"path": str(tiny), "name": "Mine"}).json()
    assert m["path"] == str(tiny.resolve()) and not m["managed"]
    info = api.get(f"/models/{m['id']}").json()["info"]
    assert info["context_length"] == 4096 and info["quantization"] == "Q8_0"
    refused = api.delete(f"/models/{m['id']}", params={"delete_file": True})
    assert refused.status_code == 400 and tiny.exists()
    assert api.delete(f"/models/{m['id']}").status_code == 204 and tiny.exists()
    bad = tmp_path / "not-a-model.gguf"
    bad.write_bytes(b"hello")
    assert api.post("/models", json={"path": str(bad)}).status_code >= 400


def test_pull_of_an_unknown_file_is_a_clear_4xx(api: httpx.Client) -> None:
    with api.stream("POST", "/hub/pull", json={"repo_id": REPO, "file": "nope.gguf"}) as r:
        text = r.read().decode()
    assert "event: error" in text and "Available" in text


def test_offline_mode_never_touches_the_network(hub: FakeHub, tmp_path: Path) -> None:
    from kataribe.services.models import ModelLibrary
    from kataribe.store.db import Database, sqlite_url

    db = Database(sqlite_url(tmp_path))
    db.migrate()
    library = ModelLibrary(db, Settings(data_dir=tmp_path, hf_endpoint=hub.url, hf_offline=True))
    hub.clear_log()
    from kataribe.errors import KataribeError

    with pytest.raises(KataribeError) as err:
        library.search("smol")
    assert err.value.status_code == 503 and "offline" in err.value.message.lower()
    assert hub.requests == []
    db.close()


def test_recommendations_over_http(api: httpx.Client) -> None:
    picks = api.get("/models/recommendations").json()
    assert {"chat", "novel"} <= {u for r in picks for u in r["use"]}
    japanese_novel = api.get("/models/recommendations", params={"use": "novel", "language": "ja"}).json()
    assert japanese_novel and all("novel" in r["use"] and "ja" in r["languages"] for r in japanese_novel)


def test_registering_a_path_that_is_no_gguf_never_tells_what_exists(
    api: httpx.Client, tmp_path: Path
) -> None:
    text = tmp_path / "notes.gguf"
    text.write_text("not a model")
    truncated = tmp_path / "cut.gguf"
    truncated.write_bytes(tiny_gguf(tmp_path / "whole.gguf").read_bytes()[:20])
    candidates = [tmp_path / "missing.gguf", tmp_path, text, truncated, text / "inside.gguf"]
    if os.geteuid() != 0:  # root reads any file
        locked = tmp_path / "locked.gguf"
        locked.write_bytes(truncated.read_bytes())
        locked.chmod(0)
        candidates.append(locked)
    messages = set()
    for path in candidates:
        r = api.post("/models", json={"path": str(path)})
        assert r.status_code == 400, (path, r.text)
        messages.add(r.json()["error"]["message"].replace(str(path), "<path>"))
    assert len(messages) == 1, messages
    assert all(m["path"] != str(text) for m in api.get("/models").json()["models"])
