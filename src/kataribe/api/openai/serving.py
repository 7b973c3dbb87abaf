"""OpenAI-compatible serving: request -> GenerationRequest, engine events -> OpenAI responses and chunks."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request

from kataribe.api.logit_bias import parse_logit_bias
from kataribe.api.openai.schemas import ChatCompletionRequest, CompletionRequest, SamplingFields
from kataribe.api.sampler_fields import ROLE_PLAY_SAMPLERS, parse_dry_breakers
from kataribe.api.streaming import error_payload, follow, raise_if_failed, sse_data
from kataribe.engine.base import (
    ChatMessage,
    Engine,
    GenerationDone,
    GenerationRequest,
    SamplingParams,
    TextDelta,
    TokenLogprob,
)
from kataribe.engine.off_loop import generate_off_loop
from kataribe.errors import InvalidRequest, ModelNotFound

OPENAI_FINISH = {"stop": "stop", "length": "length", "cancelled": "stop", "error": "stop"}


def check_model(engine: Engine, requested: str | None) -> str:
    """Accept the loaded model's name (or none, or a name we are known to alias); else 404."""
    name = engine.model_name
    if requested in (None, "", name):
        return name
    raise ModelNotFound(requested or "", [name])


def sampling_from(body: SamplingFields) -> SamplingParams:
    base = SamplingParams()
    bias = parse_logit_bias(body.logit_bias)
    repeat = body.repeat_penalty if body.repeat_penalty is not None else body.repetition_penalty

    def pick(value: Any, default: Any) -> Any:
        return default if value is None else value

    return SamplingParams(
        temperature=pick(body.temperature, base.temperature),
        top_p=pick(body.top_p, base.top_p),
        top_k=pick(body.top_k, base.top_k),
        min_p=pick(body.min_p, base.min_p),
        typical_p=pick(body.typical_p, base.typical_p),
        repeat_penalty=pick(repeat, base.repeat_penalty),
        repeat_last_n=pick(body.repeat_last_n, base.repeat_last_n),
        presence_penalty=pick(body.presence_penalty, base.presence_penalty),
        frequency_penalty=pick(body.frequency_penalty, base.frequency_penalty),
        seed=body.seed,
        logit_bias=bias,
        top_n_sigma=pick(body.top_n_sigma, base.top_n_sigma),
        dry_sequence_breakers=parse_dry_breakers(body.dry_sequence_breakers, base.dry_sequence_breakers),
        banned_strings=list(body.banned_strings or body.banned_tokens or []),
        **{name: getattr(body, name) for name in ROLE_PLAY_SAMPLERS if getattr(body, name) is not None},
    )


def _stops(stop: str | list[str] | None) -> list[str]:
    if stop is None:
        return []
    return [stop] if isinstance(stop, str) else list(stop)


def _constraints(body: SamplingFields) -> tuple[str | None, dict[str, Any] | None]:
    fmt = body.response_format
    if fmt is None or fmt.type == "text":
        return body.grammar, None
    if fmt.type == "json_object":
        return None, fmt.schema_ or {}
    schema = (fmt.json_schema.schema_ if fmt.json_schema else None) or fmt.schema_
    if schema is None:
        raise InvalidRequest(
            "response_format json_schema needs a schema: {'type': 'json_schema', "
            "'json_schema': {'name': ..., 'schema': {...}}}.",
            param="response_format",
        )
    return None, schema


def _check_n(body: SamplingFields) -> None:
    if body.n != 1:
        raise InvalidRequest("Only n=1 is supported; send separate requests for more choices.", param="n")


def chat_request(body: ChatCompletionRequest) -> GenerationRequest:
    _check_n(body)
    grammar, schema = _constraints(body)
    messages = [
        ChatMessage("system" if m.role == "developer" else m.role, m.text(), m.name) for m in body.messages
    ]
    return GenerationRequest(
        messages=messages,
        max_tokens=body.max_completion_tokens or body.max_tokens,
        sampling=sampling_from(body),
        stop=_stops(body.stop),
        grammar=grammar,
        json_schema=schema,
        logprobs=(body.top_logprobs or 0) if body.logprobs else None,
        ban_eos=body.ignore_eos,
    )


def completion_request(body: CompletionRequest) -> GenerationRequest:
    _check_n(body)
    if body.echo:
        raise InvalidRequest("echo is not supported.", param="echo")
    prompt = body.prompt
    if isinstance(prompt, list):
        if len(prompt) != 1:
            raise InvalidRequest("Send one prompt per request (a string or a one-item list).", param="prompt")
        prompt = prompt[0]
    grammar, schema = _constraints(body)
    n_probs = body.logprobs if body.logprobs is not None else body.n_probs
    return GenerationRequest(
        prompt=prompt,
        max_tokens=body.max_tokens,
        sampling=sampling_from(body),
        stop=_stops(body.stop),
        grammar=grammar,
        json_schema=schema,
        logprobs=n_probs,
        ban_eos=body.ignore_eos,
        truncate_prompt=body.truncation_length is not None,
        max_context=body.truncation_length,
    )


def _chat_logprobs(entries: list[TokenLogprob]) -> dict[str, Any]:
    return {
        "content": [
            {
                "token": e.token,
                "logprob": e.logprob,
                "bytes": e.bytes,
                "top_logprobs": [{"token": t, "logprob": lp, "bytes": b} for t, lp, b in e.top],
            }
            for e in entries
        ]
    }


def _completion_logprobs(entries: list[TokenLogprob], offset: int) -> dict[str, Any]:
    offsets: list[int] = []
    for e in entries:
        offsets.append(offset)
        offset += len(e.token)
    return {
        "tokens": [e.token for e in entries],
        "token_logprobs": [e.logprob for e in entries],
        "top_logprobs": [{t: lp for t, lp, _b in e.top} for e in entries],
        "text_offset": offsets,
    }


class OpenAIServing:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def list_models(self) -> dict[str, Any]:
        caps = self.engine.capabilities()
        return {
            "object": "list",
            "data": [
                {
                    "id": self.engine.model_name,
                    "object": "model",
                    "created": 0,
                    "owned_by": "kataribe",
                    "meta": {"engine": caps.engine, "n_ctx": caps.n_ctx, "n_ctx_train": caps.n_ctx_train},
                }
            ],
        }

    # -- chat --
    async def chat(self, body: ChatCompletionRequest, request: Request) -> dict[str, Any]:
        model = check_model(self.engine, body.model)
        stream = await generate_off_loop(self.engine, chat_request(body))
        logprob_entries: list[TokenLogprob] = []
        async for event in follow(stream, request):
            if isinstance(event, TextDelta):
                logprob_entries.extend(event.logprobs)
            else:
                return self._chat_result(event, model, logprob_entries if body.logprobs else None)
        raise AssertionError("stream ended without a result")

    def _chat_result(
        self, done: GenerationDone, model: str, lps: list[TokenLogprob] | None
    ) -> dict[str, Any]:
        raise_if_failed(done)
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": done.text},
                    "logprobs": _chat_logprobs(lps) if lps is not None else None,
                    "finish_reason": OPENAI_FINISH[done.finish_reason],
                }
            ],
            "usage": done.usage.as_openai(),
            "timings": done.timings.as_dict(),
        }

    async def chat_stream(self, body: ChatCompletionRequest, request: Request) -> AsyncIterator[bytes]:
        model = check_model(self.engine, body.model)
        events = follow(await generate_off_loop(self.engine, chat_request(body)), request)
        cid, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())

        def chunk(
            delta: dict[str, Any], finish: str | None = None, logprobs: Any = None, **extra: Any
        ) -> dict[str, Any]:
            choice = {"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish}
            return {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [choice],
                **extra,
            }

        async def chunks() -> AsyncIterator[bytes]:
            yield _sse(chunk({"role": "assistant", "content": ""}))
            async for event in events:
                if isinstance(event, TextDelta):
                    lp = _chat_logprobs(event.logprobs) if body.logprobs and event.logprobs else None
                    yield _sse(chunk({"content": event.text}, logprobs=lp))
                else:
                    final = chunk({}, OPENAI_FINISH[event.finish_reason], timings=event.timings.as_dict())
                    for part in _closing(event, final, cid, created, model, "chat.completion.chunk", body):
                        yield part

        return chunks()

    # -- completions --
    async def complete(self, body: CompletionRequest, request: Request) -> dict[str, Any]:
        model = check_model(self.engine, body.model)
        gen = completion_request(body)
        stream = await generate_off_loop(self.engine, gen)
        entries: list[TokenLogprob] = []
        async for event in follow(stream, request):
            if isinstance(event, TextDelta):
                entries.extend(event.logprobs)
                continue
            raise_if_failed(event)
            return {
                "id": f"cmpl-{uuid.uuid4().hex}",
                "object": "text_completion",
                "created": int(time.time()),
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "text": event.text,
                        "logprobs": _completion_logprobs(entries, 0) if gen.logprobs is not None else None,
                        "finish_reason": OPENAI_FINISH[event.finish_reason],
                    }
                ],
                "usage": event.usage.as_openai(),
                "timings": event.timings.as_dict(),
            }
        raise AssertionError("stream ended without a result")

    async def complete_stream(self, body: CompletionRequest, request: Request) -> AsyncIterator[bytes]:
        model = check_model(self.engine, body.model)
        gen = completion_request(body)
        events = follow(await generate_off_loop(self.engine, gen), request)
        cid, created = f"cmpl-{uuid.uuid4().hex}", int(time.time())

        def chunk(text: str, finish: str | None, logprobs: Any = None, **extra: Any) -> dict[str, Any]:
            choice = {"index": 0, "text": text, "logprobs": logprobs, "finish_reason": finish}
            return {
                "id": cid,
                "object": "text_completion",
                "created": created,
                "model": model,
                "choices": [choice],
                **extra,
            }

        async def chunks() -> AsyncIterator[bytes]:
            offset = 0
            async for event in events:
                if isinstance(event, TextDelta):
                    want = gen.logprobs is not None and event.logprobs
                    lp = _completion_logprobs(event.logprobs, offset) if want else None
                    offset += len(event.text)
                    yield _sse(chunk(event.text, None, logprobs=lp))
                else:
                    final = chunk("", OPENAI_FINISH[event.finish_reason], timings=event.timings.as_dict())
                    for part in _closing(event, final, cid, created, model, "text_completion", body):
                        yield part

        return chunks()


def _sse(payload: dict[str, Any]) -> bytes:
    return sse_data(json.dumps(payload, ensure_ascii=False))


def _closing(
    done: GenerationDone,
    final: dict[str, Any],
    cid: str,
    created: int,
    model: str,
    obj: str,
    body: SamplingFields,
) -> list[bytes]:
    """The end of an OpenAI stream: the finish chunk (or an error), usage if asked, then [DONE]."""
    if done.finish_reason == "error":
        parts = [sse_data(json.dumps({"error": error_payload(done)}, ensure_ascii=False))]
    else:
        parts = [_sse(final)]
    if body.stream_options and body.stream_options.include_usage:
        parts.append(
            _sse(
                {
                    "id": cid,
                    "object": obj,
                    "created": created,
                    "model": model,
                    "choices": [],
                    "usage": done.usage.as_openai(),
                }
            )
        )
    parts.append(sse_data("[DONE]"))
    return parts
