"""Time to first token of a follow-up turn sharing a long prefix ÷ a cold prompt of the same length.

A ~1,700-token chat (a system prompt and 30 exchanges) is sent once; the next turn adds a
short user message to it. A cold prompt of the same length but different text is timed too, on the same
server. Goal: the follow-up's first token arrives at least 10x sooner.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from common import kataribe_server, save, stream_chat

ROUNDS = 3


def history(tag: str) -> list[dict[str, str]]:
    msgs = [
        {"role": "system", "content": f"You are the narrator of story {tag}. " + "The sea was calm. " * 40}
    ]
    for i in range(30):
        msgs.append({"role": "user", "content": f"[{tag}] Chapter {i}: the keeper climbs the stairs again."})
        msgs.append(
            {"role": "assistant", "content": f"[{tag}] The lamp is lit for night {i}; waves crash below."}
        )
    return msgs


def main() -> None:
    cold_s, warm_s, warm_eval, sizes = [], [], [], []
    with kataribe_server() as url:
        for r in range(ROUNDS):
            base = history(f"warm-{r}")
            first = stream_chat(url, {"messages": base, "max_tokens": 8, "temperature": 0})
            follow = [
                *base,
                {"role": "assistant", "content": first.text},
                {"role": "user", "content": "What happens next?"},
            ]
            warm = stream_chat(url, {"messages": follow, "max_tokens": 8, "temperature": 0})
            # a cold prompt of the same length: the same shape with different text from the start
            cold_msgs = history(f"cold-{r}")
            cold_msgs = [
                *cold_msgs,
                {"role": "assistant", "content": first.text},
                {"role": "user", "content": "What happens next?"},
            ]
            cold = stream_chat(url, {"messages": cold_msgs, "max_tokens": 8, "temperature": 0})
            cold_s.append(cold.ttft_s)
            warm_s.append(warm.ttft_s)
            warm_eval.append(warm.timings["prompt_n"])
            sizes.append((warm.usage["prompt_tokens"], cold.usage["prompt_tokens"]))
    cold_med, warm_med = statistics.median(cold_s), statistics.median(warm_s)
    save(
        "prefix_ttft",
        {
            "prompt_tokens_warm_cold": sizes,
            "cold_ttft_s": [round(x, 4) for x in cold_s],
            "followup_ttft_s": [round(x, 4) for x in warm_s],
            "followup_prompt_tokens_evaluated": warm_eval,
            "speedup": round(cold_med / warm_med, 1),
            "goal": ">= 10x",
        },
    )


if __name__ == "__main__":
    main()
