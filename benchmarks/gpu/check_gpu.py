"""The embedded engine on a GPU build of llama.cpp: default offload, decode speed against the same
engine with no layers offloaded (same process, same machine), and per-conversation KV snapshots
with the KV cache on the GPU (two interleaved chats must evaluate only their new tokens).

    python check_gpu.py MODEL.gguf RESULT.json
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import llama_cpp

from kataribe.engine.base import ChatMessage, GenerationDone, GenerationRequest, SamplingParams, TextDelta
from kataribe.engine.llamacpp import EmbeddedConfig, EmbeddedEngine

GREEDY = SamplingParams(temperature=0)


def run(engine: EmbeddedEngine, request: GenerationRequest) -> tuple[str, GenerationDone]:
    text, done = [], None
    for event in engine.generate(request):
        if isinstance(event, TextDelta):
            text.append(event.text)
        else:
            done = event
    assert done is not None
    return "".join(text), done


def conversation(tag: str) -> list[ChatMessage]:
    return [
        ChatMessage("system", f"Conversation {tag}. " + f"{tag} lore. " * 300),
        ChatMessage("user", f"Hello {tag}"),
    ]


def gpu_memory_mib() -> str:
    try:
        query = ["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"]
        return subprocess.run(query, capture_output=True, text=True, timeout=20).stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        return repr(exc)


def exercise(model: Path, n_gpu_layers: int | None) -> dict[str, Any]:
    config = EmbeddedConfig(model_path=model, n_ctx=4096, n_threads=8, n_gpu_layers=n_gpu_layers)
    engine = EmbeddedEngine(config)
    result: dict[str, Any] = {"gpu_layers": engine.capabilities().gpu_layers}
    request = GenerationRequest(prompt="Once upon a time", max_tokens=256, sampling=GREEDY, ban_eos=True)
    run(engine, request)  # warm-up (CUDA kernels load on first use)
    text, done = run(engine, request)
    timings = done.timings.as_dict()
    result["decode_tok_s"] = round(timings["predicted_per_second"], 1)
    result["greedy_head"] = text[:80]
    a, b = conversation("alpha"), conversation("bravo")
    cold = run(engine, GenerationRequest(messages=a, max_tokens=6, sampling=GREEDY))[1].timings
    run(engine, GenerationRequest(messages=b, max_tokens=6, sampling=GREEDY))
    result["cold_prompt"] = {"prompt_n": cold.prompt_n, "prompt_ms": round(cold.prompt_ms, 2)}
    turns = []
    for turn in range(2):
        for messages in (a, b):
            messages.append(ChatMessage("user", f"turn {turn}"))
            reply, finished = run(engine, GenerationRequest(messages=messages, max_tokens=6, sampling=GREEDY))
            messages.append(ChatMessage("assistant", reply))
            t = finished.timings
            turns.append({"cache_n": t.cache_n, "prompt_n": t.prompt_n, "prompt_ms": round(t.prompt_ms, 2)})
    result["interleaved_turns"] = turns
    result["only_new_tokens_evaluated"] = all(t["cache_n"] > 500 and t["prompt_n"] < 40 for t in turns)
    result["gpu_memory_used_mib"] = gpu_memory_mib()
    engine.close()
    return result


def main() -> None:
    model, out = Path(sys.argv[1]), Path(sys.argv[2])
    report: dict[str, Any] = {"supports_gpu_offload": bool(llama_cpp.llama_supports_gpu_offload())}
    report["default"] = exercise(model, None)
    report["cpu_only"] = exercise(model, 0)
    report["decode_ratio_gpu_to_cpu"] = round(
        report["default"]["decode_tok_s"] / report["cpu_only"]["decode_tok_s"], 2
    )
    out.write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    print(json.dumps(report, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
