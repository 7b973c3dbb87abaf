"""Shared benchmark helpers: a Kataribe server in a subprocess and timed SSE streaming."""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

RESULTS = Path(__file__).parent / "results"
THREADS = int(os.environ.get("BENCH_THREADS", "2"))


def machine() -> dict[str, Any]:
    import llama_cpp

    return {
        "cpu": platform.processor() or platform.machine(),
        "logical_cores": os.cpu_count(),
        "physical_cores": psutil.cpu_count(logical=False),
        "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "llama_cpp_python": llama_cpp.__version__,
        "threads": THREADS,
    }


def save(name: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    data = {"benchmark": name, "date": time.strftime("%Y-%m-%d %H:%M"), "machine": machine(), **data}
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    print(json.dumps(data, indent=2, ensure_ascii=False))
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def kataribe_server(*extra: str, n_ctx: int = 8192) -> Iterator[str]:
    port = free_port()
    kataribe = Path(sys.executable).parent / "kataribe"
    with tempfile.TemporaryDirectory() as data:
        env = {**os.environ, "KATARIBE_DATA_DIR": data}
        args = [
            str(kataribe),
            "serve",
            "--port",
            str(port),
            "--threads",
            str(THREADS),
            "--ctx-size",
            str(n_ctx),
        ]
        proc = subprocess.Popen(
            [*args, *extra], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(url + "/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise
                time.sleep(0.1)
            yield url
        finally:
            proc.terminate()
            proc.wait(20)


@dataclass
class StreamTiming:
    t_start: float
    t_first: float = 0.0
    t_last: float = 0.0
    chunks: int = 0
    text: str = ""
    usage: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, Any] = field(default_factory=dict)

    @property
    def ttft_s(self) -> float:
        return self.t_first - self.t_start


def stream_chat(url: str, body: dict[str, Any]) -> StreamTiming:
    body = {**body, "stream": True, "stream_options": {"include_usage": True}}
    st = StreamTiming(t_start=time.perf_counter())
    with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=600) as r:
        r.raise_for_status()
        for line in r.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            data = json.loads(line[6:])
            if data.get("usage"):
                st.usage = data["usage"]
            for choice in data.get("choices") or []:
                if choice.get("finish_reason"):
                    st.timings = data.get("timings", {})
                piece = (choice.get("delta") or {}).get("content")
                if piece:
                    now = time.perf_counter()
                    st.t_first = st.t_first or now
                    st.t_last = now
                    st.chunks += 1
                    st.text += piece
    return st
