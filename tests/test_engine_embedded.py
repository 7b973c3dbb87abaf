"""The embedded llama.cpp engine on the real SmolLM2 model."""

from __future__ import annotations

import json
import threading
import time

import pytest

from kataribe.engine.base import ChatMessage, GenerationDone, GenerationRequest, SamplingParams, TextDelta
from kataribe.engine.llamacpp import EmbeddedEngine, pick_context_length
from kataribe.errors import ContextOverflow, InvalidRequest

GREEDY = SamplingParams(temperature=0)


def run(engine: EmbeddedEngine, request: GenerationRequest) -> tuple[list[str], GenerationDone]:
    deltas: list[str] = []
    done = None
    for event in engine.generate(request):
        if isinstance(event, TextDelta):
            deltas.append(event.text)
        else:
            done = event
    assert done is not None
    return deltas, done


def test_context_defaults_to_trained_length_capped_at_8192() -> None:
    assert pick_context_length(None, 1_024_000) == 8192
    assert pick_context_length(None, 4096) == 4096
    assert pick_context_length(None, None) == 8192
    assert pick_context_length(16384, 1_024_000) == 16384


def test_streams_text_and_reports_usage_and_timings(engine: EmbeddedEngine) -> None:
    req = GenerationRequest(
        messages=[ChatMessage("user", "Name three colors.")], max_tokens=12, sampling=GREEDY
    )
    deltas, done = run(engine, req)
    assert len(deltas) >= 2
    assert "".join(deltas) == done.text
    assert done.usage.completion_tokens == done.timings.predicted_n > 0
    assert done.usage.prompt_tokens == done.timings.prompt_n + done.timings.cache_n
    assert done.timings.as_dict()["predicted_per_second"] > 0


def test_stop_string_spanning_tokens_on_real_output(engine: EmbeddedEngine) -> None:
    prompt = "The capital of France is Paris. The capital of Germany is"
    _d, free = run(engine, GenerationRequest(prompt=prompt, max_tokens=24, sampling=GREEDY))
    text = free.text
    ids = [engine.tokenize(text[:i]) for i in range(len(text) + 1)]
    # find a stop string that starts inside one token and ends inside a later one
    stop = None
    for start in range(2, len(text) - 6):
        candidate = text[start : start + 5]
        if candidate.strip() and len(engine.tokenize(candidate)) >= 2 and len(ids[start]) > 0:
            stop = candidate
            break
    assert stop is not None, text
    deltas, done = run(engine, GenerationRequest(prompt=prompt, max_tokens=24, sampling=GREEDY, stop=[stop]))
    assert done.finish_reason == "stop" and done.stop == stop
    assert done.text == text[: text.index(stop)]
    assert stop not in "".join(deltas)
    assert not any(stop[:2] in d for d in deltas[-1:]) or stop[:2] in done.text


def test_second_request_evaluates_only_the_new_suffix(engine: EmbeddedEngine) -> None:
    history = [
        ChatMessage("system", "You are a terse assistant for prefix test 1."),
        ChatMessage("user", "Tell me about rivers " * 20),
    ]
    _d, first = run(engine, GenerationRequest(messages=history, max_tokens=8, sampling=GREEDY))
    follow = [*history, ChatMessage("assistant", first.text), ChatMessage("user", "And lakes?")]
    _d, second = run(engine, GenerationRequest(messages=follow, max_tokens=8, sampling=GREEDY))
    full = len(engine.tokenize(engine.render_chat(follow), special=True))
    assert second.timings.cache_n >= first.usage.prompt_tokens
    assert second.timings.prompt_n < 30 < full
    assert second.timings.prompt_n + second.timings.cache_n == full


def test_two_interleaved_conversations_each_evaluate_only_new_tokens(engine: EmbeddedEngine) -> None:
    def convo(tag: str) -> list[ChatMessage]:
        return [
            ChatMessage("system", f"Conversation {tag}. " + f"{tag} lore. " * 60),
            ChatMessage("user", f"Hello from {tag}"),
        ]

    a, b = convo("alpha"), convo("bravo")
    run(engine, GenerationRequest(messages=a, max_tokens=6, sampling=GREEDY))
    run(engine, GenerationRequest(messages=b, max_tokens=6, sampling=GREEDY))
    for turn in range(2):
        for msgs in (a, b):
            msgs.append(ChatMessage("user", f"turn {turn}"))
            _d, done = run(engine, GenerationRequest(messages=msgs, max_tokens=6, sampling=GREEDY))
            msgs.append(ChatMessage("assistant", done.text))
            assert done.timings.cache_n > 150, done.timings
            assert done.timings.prompt_n < 40, done.timings


def test_cancel_mid_generation_stops_promptly_and_engine_still_works(engine: EmbeddedEngine) -> None:
    stream = engine.generate(
        GenerationRequest(prompt="Write a long story:", max_tokens=2000, sampling=SamplingParams(seed=1))
    )
    n = 0
    for event in stream:
        if isinstance(event, TextDelta):
            n += 1
            if n == 3:
                stream.cancel()
        else:
            assert event.finish_reason == "cancelled"
            assert event.usage.completion_tokens < 50
    _d, done = run(engine, GenerationRequest(prompt="One two three", max_tokens=3, sampling=GREEDY))
    assert done.finish_reason in ("length", "stop")


def test_cancel_during_prompt_processing(engine: EmbeddedEngine) -> None:
    long_prompt = " ".join(f"word{i}" for i in range(900))  # ~3600 tokens: a second or more to evaluate
    stream = engine.generate(GenerationRequest(prompt=long_prompt, max_tokens=5, sampling=GREEDY))
    assert stream.started.wait(10)
    time.sleep(0.1)
    t0 = time.monotonic()
    stream.cancel()
    done = stream.collect()
    assert done.finish_reason == "cancelled"
    assert done.usage.completion_tokens == 0
    assert time.monotonic() - t0 < 1.0
    # the context stays usable and consistent after an aborted decode
    _d, again = run(engine, GenerationRequest(prompt="Count: one, two,", max_tokens=4, sampling=GREEDY))
    assert again.finish_reason in ("length", "stop") and again.text


def test_fifo_queue_runs_requests_in_order_without_cutting_anyone_off(engine: EmbeddedEngine) -> None:
    results: dict[int, GenerationDone] = {}
    starts: dict[int, float] = {}
    streams = [
        engine.generate(
            GenerationRequest(
                prompt=f"List {i}:", max_tokens=15, sampling=SamplingParams(temperature=0, logit_bias={})
            )
        )
        for i in range(3)
    ]

    def consume(i: int) -> None:
        for event in streams[i]:
            if isinstance(event, TextDelta) and i not in starts:
                starts[i] = time.monotonic()
            elif isinstance(event, GenerationDone):
                results[i] = event

    threads = [threading.Thread(target=consume, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(results) == [0, 1, 2]
    for done in results.values():
        assert done.finish_reason in ("length", "stop")
        assert done.usage.completion_tokens == 15 or done.finish_reason == "stop"
    assert starts[0] < starts[1] < starts[2]


def test_logit_bias_bans_a_token(engine: EmbeddedEngine) -> None:
    prompt = "1, 2, 3, 4,"
    _d, free = run(engine, GenerationRequest(prompt=prompt, max_tokens=4, sampling=GREEDY))
    first = engine.tokenize(free.text)[0]
    banned = SamplingParams(temperature=0, logit_bias={first: -100.0})
    _d, done = run(engine, GenerationRequest(prompt=prompt, max_tokens=4, sampling=banned))
    assert engine.tokenize(done.text)[:1] != [first]


def test_json_schema_output_is_constrained(engine: EmbeddedEngine) -> None:
    schema = {
        "type": "object",
        "properties": {"mood": {"enum": ["joy", "anger", "neutral"]}},
        "required": ["mood"],
    }
    req = GenerationRequest(
        messages=[ChatMessage("user", "I won the lottery! What is my mood?")],
        max_tokens=30,
        json_schema=schema,
        sampling=GREEDY,
    )
    _d, done = run(engine, req)
    assert json.loads(done.text)["mood"] in ("joy", "anger", "neutral")


def test_same_seed_same_text(engine: EmbeddedEngine) -> None:
    def sample(seed: int) -> str:
        req = GenerationRequest(
            prompt="Once upon a time", max_tokens=12, sampling=SamplingParams(temperature=1.0, seed=seed)
        )
        return run(engine, req)[1].text

    assert sample(42) == sample(42)


def test_logprobs_for_each_token(engine: EmbeddedEngine) -> None:
    req = GenerationRequest(prompt="The sky is", max_tokens=5, logprobs=3, sampling=GREEDY)
    stream = engine.generate(req)
    entries = [lp for e in stream if isinstance(e, TextDelta) for lp in e.logprobs]
    assert len(entries) == 5
    for e in entries:
        assert e.logprob <= 0 and len(e.top) == 3
        assert e.top[0][1] >= e.top[1][1]
        assert abs(e.top[0][1] - e.logprob) < 1e-3  # greedy picks the most likely token


def test_prompt_longer_than_context_is_refused(engine: EmbeddedEngine) -> None:
    with pytest.raises(ContextOverflow) as err:
        engine.generate(GenerationRequest(prompt="word " * 5000, max_tokens=10))
    assert "context holds 4096" in err.value.message


def test_kobold_style_truncation_keeps_the_end_of_the_prompt(engine: EmbeddedEngine) -> None:
    prompt = "word " * 5000 + "The end."
    _d, done = run(
        engine,
        GenerationRequest(
            prompt=prompt, max_tokens=4, truncate_prompt=True, max_context=1024, sampling=GREEDY
        ),
    )
    assert done.usage.prompt_tokens <= 1024 - 4


@pytest.mark.parametrize(
    "sampling",
    [SamplingParams(temperature=-1), SamplingParams(top_p=2), SamplingParams(logit_bias={10**7: 1.0})],
)
def test_bad_sampling_is_refused(engine: EmbeddedEngine, sampling: SamplingParams) -> None:
    with pytest.raises(InvalidRequest):
        engine.generate(GenerationRequest(prompt="x", max_tokens=2, sampling=sampling))


def test_bad_grammar_is_refused(engine: EmbeddedEngine) -> None:
    with pytest.raises(InvalidRequest):
        engine.generate(GenerationRequest(prompt="x", max_tokens=2, grammar="root ::= ("))


def test_japanese_generation_is_valid_text(engine: EmbeddedEngine) -> None:
    req = GenerationRequest(
        prompt="日本の首都は東京です。大阪は", max_tokens=30, sampling=SamplingParams(seed=7)
    )
    deltas, done = run(engine, req)
    assert "".join(deltas) == done.text
    assert any("\u3040" <= ch <= "\u9fff" for ch in done.text)


def test_continue_last_assistant_message(engine: EmbeddedEngine) -> None:
    msgs = [
        ChatMessage("user", "Count from one to ten in words."),
        ChatMessage("assistant", "One, two, three,"),
    ]
    req = GenerationRequest(messages=msgs, max_tokens=8, sampling=GREEDY, continue_last=True)
    rendered = engine._template.render_continuation(msgs).text
    assert rendered.endswith("One, two, three,")
    _d, done = run(engine, req)
    assert done.text and "four" in done.text.lower()
    with pytest.raises(InvalidRequest):
        engine.generate(GenerationRequest(messages=msgs[:1], continue_last=True))
