"""Two conversations interleaved on one model: prompt tokens evaluated per turn vs tokens new.

Turns alternate A, B, A, B... Each turn's "new" tokens are the prompt tokens minus those of
the same conversation's previous prompt plus its reply. Goal: evaluated == new (only the new
tokens), where a plain single-slot cache would re-evaluate the whole prompt on every switch.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from common import kataribe_server, save, stream_chat

TURNS = 5


def main() -> None:
    convs = {
        tag: [{"role": "system", "content": f"You are {name}. " + f"{name} knows the old tales. " * 60}]
        for tag, name in (("A", "Aiko the bard"), ("B", "Bruno the smith"))
    }
    seen = {"A": 0, "B": 0}  # tokens already known for each conversation (prompt + reply)
    rows = []
    with kataribe_server() as url:
        for turn in range(TURNS):
            for tag, msgs in convs.items():
                msgs.append({"role": "user", "content": f"Turn {turn}: tell me one more thing."})
                st = stream_chat(url, {"messages": msgs, "max_tokens": 12, "temperature": 0})
                msgs.append({"role": "assistant", "content": st.text})
                prompt = st.usage["prompt_tokens"]
                evaluated = st.timings["prompt_n"]
                new = prompt - seen[tag] if seen[tag] else prompt
                rows.append(
                    {
                        "turn": turn,
                        "conversation": tag,
                        "prompt_tokens": prompt,
                        "new_tokens": new,
                        "evaluated": evaluated,
                        "reused": st.timings["cache_n"],
                    }
                )
                seen[tag] = prompt + st.usage["completion_tokens"]
    later = [r for r in rows if r["turn"] > 0]
    save(
        "interleave",
        {
            "turns": rows,
            "later_turns_evaluated_total": sum(r["evaluated"] for r in later),
            "later_turns_new_total": sum(r["new_tokens"] for r in later),
            "later_turns_prompt_total": sum(r["prompt_tokens"] for r in later),
            "goal": "evaluated ~= new on every turn after the first",
        },
    )


if __name__ == "__main__":
    main()
