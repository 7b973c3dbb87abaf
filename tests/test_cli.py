"""The kataribe command: complete, info, chat with slash commands, serve end to end."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import httpx
from openai import OpenAI

from tests.conftest import VENV_BIN, free_port, wait_http

KATARIBE = str(VENV_BIN / "kataribe")


def run_cli(*args: str, stdin: str | None = None, data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KATARIBE_DATA_DIR": str(data_dir), "KATARIBE_N_THREADS": "2"}
    return subprocess.run(
        [KATARIBE, *args], input=stdin, capture_output=True, text=True, timeout=180, env=env
    )


def test_complete_prints_the_streamed_text(tmp_path: Path) -> None:
    proc = run_cli(
        "complete", "The capital of France is", "--max-tokens", "6", "--temperature", "0", data_dir=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip()
    assert "tokens" in proc.stderr and "tok/s" in proc.stderr


def test_info_json_describes_the_model_without_loading_it(tmp_path: Path) -> None:
    proc = run_cli("info", "--json", data_dir=tmp_path)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["architecture"] == "llama" and data["context_length"] == 8192
    assert data["quantization"] == "Q4_1" and data["chat_template"] is True
    assert data["default_context"] == 8192 and data["data_dir"] == str(tmp_path)


def test_missing_model_file_is_a_clear_error(tmp_path: Path) -> None:
    proc = run_cli("complete", "x", "--model", str(tmp_path / "nope.gguf"), data_dir=tmp_path)
    assert proc.returncode == 2 and "not found" in proc.stderr.lower()


def test_chat_with_slash_commands(tmp_path: Path) -> None:
    script = "Hello!\n/system You are a pirate.\n/regen\n/bogus\n/clear\n/regen\nBye\n/quit\n"
    proc = run_cli("chat", "--max-tokens", "8", "--temperature", "0", stdin=script, data_dir=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "system prompt set" in out
    assert "Unknown command /bogus" in out
    assert "history cleared" in out and "nothing to regenerate" in out
    assert proc.stderr.count("tok/s") == 3  # Hello, the regenerated reply, Bye


def test_config_file_sets_the_context(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text("n_ctx = 1024\n")
    proc = run_cli("info", "--json", data_dir=tmp_path)
    assert json.loads(proc.stdout)["default_context"] == 1024


def test_serve_answers_the_openai_client(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "KATARIBE_DATA_DIR": str(tmp_path)}
    proc = subprocess.Popen(
        [KATARIBE, "serve", "--port", str(port), "--threads", "2", "--ctx-size", "2048"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/health", proc=proc)
        assert httpx.get(f"http://127.0.0.1:{port}/health").json()["n_ctx"] == 2048
        client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=0)
        stream = client.chat.completions.create(
            model="SmolLM2-135M-Instruct.Q4_1",
            stream=True,
            max_tokens=10,
            messages=[{"role": "user", "content": "Hello"}],
        )
        assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    finally:
        proc.terminate()
        proc.wait(20)
