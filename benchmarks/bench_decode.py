"""Decode speed through Kataribe's /v1/chat/completions ÷ raw llama-cpp-python, same run.

Same model, threads, prompt, greedy sampling, EOS banned so both produce exactly N tokens.
Decode rate = (tokens - 1) / (time of last token - time of first token), so prompt
processing is excluded on both sides. Goal: ratio >= 0.97.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from common import THREADS, kataribe_server, save, stream_chat
from kataribe.engine.default_model import default_model_path

N_TOKENS = 200
ROUNDS = 5
MESSAGES = [{"role": "user", "content": "Tell me a long story about a lighthouse keeper."}]


def raw_decode_rate(llm: object, eos: int) -> float:
    times: list[float] = []
    stream = llm.create_chat_completion(  # type: ignore[attr-defined]
        messages=MESSAGES, max_tokens=N_TOKENS, temperature=0, stream=True, logit_bias={eos: -100.0}
    )
    for chunk in stream:
        if chunk["choices"][0]["delta"].get("content"):
            times.append(time.perf_counter())
    return (len(times) - 1) / (times[-1] - times[0])


def kataribe_decode_rate(url: str, eos: int) -> tuple[float, int]:
    st = stream_chat(
        url, {"messages": MESSAGES, "max_tokens": N_TOKENS, "temperature": 0, "logit_bias": {str(eos): -100}}
    )
    n = int(st.usage["completion_tokens"])
    # chunks can hold more than one token when a character spans tokens; count real tokens
    return (n - 1) / (st.t_last - st.t_first), n


def main() -> None:
    from llama_cpp import Llama

    model = str(default_model_path())
    llm = Llama(model_path=model, n_ctx=8192, n_threads=THREADS, n_threads_batch=THREADS, verbose=False)
    eos = llm.token_eos()
    raw, ours = [], []
    with kataribe_server() as url:
        kataribe_decode_rate(url, eos)  # warm-up both
        raw_decode_rate(llm, eos)
        for _ in range(ROUNDS):  # interleaved so drift in machine load hits both alike
            raw.append(raw_decode_rate(llm, eos))
            rate, n = kataribe_decode_rate(url, eos)
            assert n == N_TOKENS, n
            ours.append(rate)
    raw_med, ours_med = statistics.median(raw), statistics.median(ours)
    save(
        "decode",
        {
            "tokens": N_TOKENS,
            "rounds": ROUNDS,
            "raw_llama_cpp_python_tok_s": [round(x, 2) for x in raw],
            "kataribe_tok_s": [round(x, 2) for x in ours],
            "raw_median_tok_s": round(raw_med, 2),
            "kataribe_median_tok_s": round(ours_med, 2),
            "ratio": round(ours_med / raw_med, 3),
            "goal": ">= 0.97",
        },
    )


if __name__ == "__main__":
    main()
