"""llama-server's /completion on the engine: body -> GenerationRequest, events -> llama-server's
answer (or its SSE chunks), and the /props and /slots views."""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import anyio.to_thread
from starlette.requests import Request

from kataribe import __version__
from kataribe.api.llamaserver.request_fields import bias_pairs, prompt_parts, sampling_from
from kataribe.api.llamaserver.sampler_list import active_samplers
from kataribe.api.llamaserver.schemas import CompletionBody
from kataribe.api.model_facts import model_facts
from kataribe.api.sampler_fields import capped_stop_list
from kataribe.api.streaming import error_payload, follow, raise_if_failed, sse_data
from kataribe.engine.base import (
    Engine,
    GenerationDone,
    GenerationRequest,
    SamplingParams,
    TextDelta,
    Timings,
    TokenLogprob,
    Usage,
)
from kataribe.engine.off_loop import generate_off_loop
from kataribe.errors import InvalidRequest


@dataclass
class PreparedCompletion:
    request: GenerationRequest
    prompt: str
    n_predict: int
    samplers: list[str]


def _stop_type(done: GenerationDone) -> str:
    if done.finish_reason == "stop":
        return "word" if done.stop is not None else "eos"
    return "limit"


def completion_probabilities(entries: Sequence[TokenLogprob]) -> list[dict[str, Any]]:
    """llama-server's shape, plus ``content``/``probs`` as servers before b4400 gave them (SillyTavern
    1.12 reads those)."""
    return [
        {
            "token": e.token,
            "logprob": e.logprob,
            "bytes": e.bytes,
            "top_logprobs": [{"token": t, "logprob": lp, "bytes": b} for t, lp, b in e.top],
            "content": e.token,
            "probs": [{"tok_str": t, "prob": math.exp(lp)} for t, lp, _b in e.top],
        }
        for e in entries
    ]


def generation_settings(
    params: SamplingParams,
    *,
    model: str,
    n_ctx: int,
    n_predict: int = -1,
    stop: Sequence[str] = (),
    n_probs: int = 0,
    grammar: str = "",
    stream: bool = False,
    ignore_eos: bool = False,
) -> dict[str, Any]:
    """llama-server's ``generation_settings`` (also /props' defaults), from what will actually run."""
    return {
        "n_ctx": n_ctx,
        "model": model,
        "n_predict": n_predict,
        "seed": 0xFFFFFFFF if params.seed is None else params.seed,
        "temperature": params.temperature,
        "dynatemp_range": params.dynatemp_range,
        "dynatemp_exponent": params.dynatemp_exponent,
        "top_k": params.top_k,
        "top_p": params.top_p,
        "min_p": params.min_p,
        "top_n_sigma": params.top_n_sigma,
        "xtc_probability": params.xtc_probability,
        "xtc_threshold": params.xtc_threshold,
        "typical_p": params.typical_p,
        "repeat_last_n": params.repeat_last_n,
        "repeat_penalty": params.repeat_penalty,
        "presence_penalty": params.presence_penalty,
        "frequency_penalty": params.frequency_penalty,
        "dry_multiplier": params.dry_multiplier,
        "dry_base": params.dry_base,
        "dry_allowed_length": params.dry_allowed_length,
        "dry_penalty_last_n": params.dry_penalty_last_n,
        "dry_sequence_breakers": list(params.dry_sequence_breakers),
        "mirostat": params.mirostat,
        "mirostat_tau": params.mirostat_tau,
        "mirostat_eta": params.mirostat_eta,
        "stop": list(stop),
        "max_tokens": n_predict,
        "n_keep": 0,
        "n_discard": 0,
        "ignore_eos": ignore_eos,
        "stream": stream,
        "n_probs": n_probs,
        "min_keep": 0,
        "grammar": grammar,
        "samplers": active_samplers(params),
        "timings_per_token": False,
    }


class LlamaServerServing:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- preparation --
    async def prepare(self, body: CompletionBody) -> PreparedCompletion:
        """The generation a body asks for; token ids in the prompt and text keys in logit_bias go
        through the tokenizer off the event loop."""
        if body.grammar and body.json_schema is not None:
            raise InvalidRequest("Send either grammar or json_schema, not both.", param="grammar")
        parts = prompt_parts(body.prompt)
        pairs = bias_pairs(body.logit_bias) if body.logit_bias else []
        prompt, bias = await anyio.to_thread.run_sync(self._resolve, parts, pairs)
        n_predict = body.n_predict if body.n_predict is not None else body.max_tokens
        n_predict = -1 if n_predict is None or n_predict < 0 else n_predict
        sampling = sampling_from(body)
        sampling.logit_bias = bias
        request = GenerationRequest(
            prompt=prompt,
            max_tokens=n_predict if n_predict > 0 else None,
            sampling=sampling,
            stop=capped_stop_list(body.stop, "stop"),
            grammar=body.grammar or None,
            json_schema=body.json_schema,
            logprobs=body.n_probs or None,
            ban_eos=body.ignore_eos,
            reply_fills_context=True,  # as llama-server: n_predict past the context stops there
        )
        return PreparedCompletion(request, prompt, n_predict, active_samplers(sampling))

    def _resolve(
        self, parts: list[str | list[int]], pairs: list[tuple[int | str, float]]
    ) -> tuple[str, dict[int, float]]:
        prompt = "".join(p if isinstance(p, str) else self.engine.detokenize(p) for p in parts)
        bias: dict[int, float] = {}
        for key, value in pairs:
            for token in [key] if isinstance(key, int) else self.engine.tokenize(key):
                bias[token] = value
        return prompt, bias

    def _settings(self, job: PreparedCompletion, stream: bool) -> dict[str, Any]:
        req = job.request
        return generation_settings(
            req.sampling,
            model=self.engine.model_name,
            n_ctx=self.engine.capabilities().n_ctx,
            n_predict=job.n_predict,
            stop=req.stop,
            n_probs=req.logprobs or 0,
            grammar=req.grammar or "",
            stream=stream,
            ignore_eos=req.ban_eos,
        )

    def _final(
        self, job: PreparedCompletion, done: GenerationDone, content: str, stream: bool
    ) -> dict[str, Any]:
        return {
            "index": 0,
            "content": content,
            "tokens": [],
            "id_slot": 0,
            "stop": True,
            "model": self.engine.model_name,
            "tokens_predicted": done.usage.completion_tokens,
            "tokens_evaluated": done.usage.prompt_tokens,
            "generation_settings": self._settings(job, stream),
            "prompt": job.prompt,
            "has_new_line": "\n" in done.text,
            "truncated": False,
            "stop_type": _stop_type(done),
            "stopping_word": done.stop or "",
            "tokens_cached": done.usage.cached_tokens,
            "timings": done.timings.as_dict(),
        }

    async def _nothing_to_predict(self, job: PreparedCompletion) -> dict[str, Any]:
        """n_predict 0: llama-server only reads the prompt; here it is counted and nothing is run."""
        counted = await anyio.to_thread.run_sync(self.engine.count_tokens, job.prompt)
        done = GenerationDone("length", Usage(prompt_tokens=counted.count), Timings(), "")
        return self._final(job, done, "", stream=False)

    # -- /completion --
    async def complete(self, body: CompletionBody, request: Request) -> dict[str, Any]:
        job = await self.prepare(body)
        if job.n_predict == 0:
            return await self._nothing_to_predict(job)
        probs: list[TokenLogprob] = []
        async for event in follow(await generate_off_loop(self.engine, job.request), request):
            if isinstance(event, TextDelta):
                probs.extend(event.logprobs)
                continue
            raise_if_failed(event)
            answer = self._final(job, event, event.text, stream=False)
            if body.n_probs:
                answer["completion_probabilities"] = completion_probabilities(probs)
            return answer
        raise AssertionError("stream ended without a result")

    async def complete_stream(self, body: CompletionBody, request: Request) -> AsyncIterator[bytes]:
        job = await self.prepare(body)
        if job.n_predict == 0:
            final = await self._nothing_to_predict(job)
            return _single(_sse({**final, "generation_settings": self._settings(job, True)}))
        events = follow(await generate_off_loop(self.engine, job.request), request)

        async def chunks() -> AsyncIterator[bytes]:
            async for event in events:
                if isinstance(event, TextDelta):
                    if not event.text and not event.logprobs:
                        continue
                    chunk: dict[str, Any] = {
                        "index": 0,
                        "content": event.text,
                        "tokens": [],
                        "stop": False,
                        "id_slot": -1,
                    }
                    if body.n_probs:
                        chunk["completion_probabilities"] = completion_probabilities(event.logprobs)
                    yield _sse(chunk)
                elif event.finish_reason == "error":
                    yield _sse({"error": {"code": 500, **error_payload(event)}})
                else:
                    yield _sse(self._final(job, event, "", stream=True))

        return chunks()

    # -- /props and /slots --
    async def props(self) -> dict[str, Any]:
        facts = await anyio.to_thread.run_sync(model_facts, self.engine)
        return {
            "default_generation_settings": self._slot(facts.n_ctx),
            "total_slots": 1,
            "model_path": facts.path or facts.name,
            "model_alias": facts.name,
            "chat_template": facts.chat_template,
            "modalities": {"vision": False, "audio": False},
            "build_info": f"kataribe-{__version__}",
        }

    def slots(self) -> list[dict[str, Any]]:
        return [self._slot(self.engine.capabilities().n_ctx)]

    def _slot(self, n_ctx: int) -> dict[str, Any]:
        busy = self.engine.queue_depth() > 0
        params = generation_settings(SamplingParams(), model=self.engine.model_name, n_ctx=n_ctx)
        return {
            "id": 0,
            "id_task": -1,
            "n_ctx": n_ctx,
            "speculative": False,
            "is_processing": busy,
            "params": params,
            "prompt": "",
            "next_token": {
                "has_next_token": busy,
                "has_new_line": False,
                "n_remain": -1,
                "n_decoded": 0,
                "stopping_word": "",
            },
        }


def _sse(payload: dict[str, Any]) -> bytes:
    return sse_data(json.dumps(payload, ensure_ascii=False))


async def _single(chunk: bytes) -> AsyncIterator[bytes]:
    yield chunk
