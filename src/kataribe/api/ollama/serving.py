"""Ollama's API on the engine: /api/generate and /api/chat -> one GenerationRequest each, events ->
Ollama's NDJSON lines (durations in nanoseconds); /api/tags, /api/show and /api/ps from the model."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import anyio.to_thread
from starlette.requests import Request

from kataribe.api.model_facts import ModelFacts, model_facts
from kataribe.api.ollama.schemas import ChatBody, GenerateBody, GenerationFields, Options, ShowBody
from kataribe.api.sampler_fields import capped_stop_list
from kataribe.api.streaming import error_payload, follow, raise_if_failed
from kataribe.engine.base import (
    ChatMessage,
    Engine,
    GenerationDone,
    GenerationRequest,
    SamplingParams,
    TextDelta,
)
from kataribe.engine.off_loop import generate_off_loop
from kataribe.errors import InvalidRequest, ModelNotFound, NotSupported

log = logging.getLogger(__name__)

OLLAMA_VERSION = "0.12.0"
"""The Ollama release whose API we follow (clients gate features on this number)."""
NEVER_EXPIRES = "2999-12-31T23:59:59Z"
"""The model stays loaded until another is loaded: keep_alive is accepted and has no effect."""
OLLAMA_DEFAULTS = SamplingParams(
    temperature=0.8, top_k=40, top_p=0.9, min_p=0.0, repeat_penalty=1.1, repeat_last_n=64
)
"""Ollama's sampler defaults, for options a client leaves out."""
_OPTION_SAMPLERS = (
    "temperature",
    "top_p",
    "min_p",
    "typical_p",
    "repeat_penalty",
    "repeat_last_n",
    "presence_penalty",
    "frequency_penalty",
    "mirostat",
    "mirostat_tau",
    "mirostat_eta",
)
_UNSUPPORTED = {
    "pull": "Kataribe does not pull Ollama models: add a GGUF file to its model library instead "
    "(the web app's Models page, or POST /api/models).",
    "push": "Kataribe does not push models to a registry.",
    "create": "Kataribe does not create models from a Modelfile: add a GGUF file to its model library.",
    "delete": "Kataribe does not delete models through Ollama's API: use its model library.",
    "copy": "Kataribe does not copy models: the loaded model has one name.",
    "blobs": "Kataribe does not take model blobs: add a GGUF file to its model library.",
    "embed": "Kataribe does not compute embeddings.",
    "embeddings": "Kataribe does not compute embeddings.",
}


def ollama_name(model: str) -> str:
    """Ollama names carry a tag; a name without one is ``<name>:latest``."""
    return model if ":" in model else f"{model}:latest"


def _timestamp(when: datetime | None = None) -> str:
    return (when or datetime.now(UTC)).isoformat().replace("+00:00", "Z")


def _sampling(options: Options) -> SamplingParams:
    base = OLLAMA_DEFAULTS
    chosen = {name: getattr(options, name) for name in _OPTION_SAMPLERS if getattr(options, name) is not None}
    seed = options.seed if options.seed is not None and options.seed >= 0 else None
    top_k = base.top_k if options.top_k is None else max(0, options.top_k)
    params = SamplingParams(**{**{n: getattr(base, n) for n in _OPTION_SAMPLERS}, **chosen})
    params.top_k, params.seed = top_k, seed
    return params


def _stops(stop: list[str] | str | None) -> list[str]:
    """The stop strings, the first MAX_STOP_STRINGS of them (150,000 of them made each token 0.13 s)."""
    return capped_stop_list(stop, "options.stop")


def _max_tokens(options: Options) -> int | None:
    """num_predict: -1 (no limit) and -2 (fill the context) both run to the end or the context."""
    n = options.num_predict
    return n if n is not None and n > 0 else None


def _constraint(fmt: str | dict[str, Any] | None) -> dict[str, Any] | None:
    if fmt is None or fmt == "":
        return None
    if fmt == "json":
        return {}
    if isinstance(fmt, dict):
        return fmt
    raise InvalidRequest(f'format must be "json" or a JSON schema, not "{fmt}".', param="format")


class OllamaServing:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- models --
    def _check_model(self, requested: str | None) -> str:
        """The name to answer with: the one the client sent, if it names the loaded model."""
        name = self.engine.model_name
        if not requested:
            return ollama_name(name)
        if requested.lower() in (name.lower(), ollama_name(name).lower()):
            return requested
        raise ModelNotFound(requested, [ollama_name(name)])

    async def _facts(self) -> ModelFacts:
        return await anyio.to_thread.run_sync(model_facts, self.engine)

    @staticmethod
    def _details(facts: ModelFacts) -> dict[str, Any]:
        return {
            "parent_model": "",
            "format": "gguf" if facts.path else "",
            "family": facts.architecture,
            "families": [facts.architecture],
            "parameter_size": facts.parameter_size,
            "quantization_level": facts.quantization or "",
        }

    def _entry(self, facts: ModelFacts) -> dict[str, Any]:
        name = ollama_name(facts.name)
        return {
            "name": name,
            "model": name,
            "modified_at": _timestamp(facts.modified_at),
            "size": facts.size,
            "digest": facts.digest,
            "details": self._details(facts),
        }

    async def tags(self) -> dict[str, Any]:
        return {"models": [self._entry(await self._facts())]}

    async def ps(self) -> dict[str, Any]:
        facts = await self._facts()
        on_gpu = self.engine.capabilities().gpu_layers != 0
        entry = {
            **self._entry(facts),
            "expires_at": NEVER_EXPIRES,
            "size_vram": facts.size if on_gpu else 0,
            "context_length": facts.n_ctx,
        }
        return {"models": [entry]}

    async def show(self, body: ShowBody) -> dict[str, Any]:
        self._check_model(body.model or body.name)
        facts = await self._facts()
        arch = facts.architecture
        parameters = "\n".join(
            f"{key:<30} {value}"
            for key, value in (
                ("num_ctx", facts.n_ctx),
                ("temperature", OLLAMA_DEFAULTS.temperature),
                ("top_k", OLLAMA_DEFAULTS.top_k),
                ("top_p", OLLAMA_DEFAULTS.top_p),
                ("repeat_penalty", OLLAMA_DEFAULTS.repeat_penalty),
            )
        )
        modelfile = (
            f"# Modelfile of {ollama_name(facts.name)}, served by Kataribe\n"
            f"FROM {facts.path or facts.name}\n"
            + (f'TEMPLATE """{facts.chat_template}"""\n' if facts.chat_template else "")
            + "".join(f"PARAMETER {line.split()[0]} {line.split()[1]}\n" for line in parameters.splitlines())
        )
        return {
            "license": str(facts.metadata.get("general.license", "")),
            "modelfile": modelfile,
            "parameters": parameters,
            "template": facts.chat_template,
            "details": self._details(facts),
            "model_info": {
                **facts.metadata,
                "general.architecture": arch,
                "general.parameter_count": facts.parameter_count,
                f"{arch}.context_length": facts.n_ctx,
            },
            "capabilities": ["completion"],
            "modified_at": _timestamp(facts.modified_at),
        }

    # -- requests --
    def _refuse_unsupported(self, body: GenerationFields, images: bool, tools: bool = False) -> None:
        name = self.engine.model_name
        if images:
            raise InvalidRequest(
                f"{name} cannot read images (Kataribe runs text models only); send text only.", param="images"
            )
        if tools:
            raise InvalidRequest(f"{name} does not support tools.", param="tools")
        if body.think not in (None, False):
            raise InvalidRequest(f'"{name}" does not support thinking.', param="think")

    def _window(self, options: Options) -> int:
        n_ctx = self.engine.capabilities().n_ctx
        if options.num_ctx is not None and options.num_ctx > n_ctx:
            log.warning("num_ctx %d asked for; the loaded context is %d tokens", options.num_ctx, n_ctx)
        return min(options.num_ctx or n_ctx, n_ctx)

    def generate_request(self, body: GenerateBody) -> GenerationRequest:
        self._refuse_unsupported(body, images=bool(body.images))
        if body.template:
            raise InvalidRequest(
                "A custom template is not supported: send raw: true with the prompt already formatted.",
                param="template",
            )
        if body.suffix:
            raise InvalidRequest(f"{self.engine.model_name} does not support insert.", param="suffix")
        if body.context:
            raise InvalidRequest(
                "context from an earlier answer is not supported: send the whole text as the prompt.",
                param="context",
            )
        shared: dict[str, Any] = {
            "max_tokens": _max_tokens(body.options),
            "sampling": _sampling(body.options),
            "stop": _stops(body.options.stop),
            "json_schema": _constraint(body.format),
            # Ollama cuts a raw prompt that does not fit num_ctx from the start
            "truncate_prompt": body.raw,
            "max_context": self._window(body.options),
            "reply_fills_context": True,  # as Ollama: num_predict past the context stops there
        }
        if body.raw:
            return GenerationRequest(prompt=body.prompt, **shared)
        messages = [ChatMessage("system", body.system)] if body.system else []
        return GenerationRequest(messages=[*messages, ChatMessage("user", body.prompt)], **shared)

    def chat_request(self, body: ChatBody) -> GenerationRequest:
        self._refuse_unsupported(body, images=any(m.images for m in body.messages), tools=bool(body.tools))
        messages = [ChatMessage(m.role, m.content or "") for m in body.messages]
        self._window(body.options)
        return GenerationRequest(
            messages=messages,
            max_tokens=_max_tokens(body.options),
            sampling=_sampling(body.options),
            stop=_stops(body.options.stop),
            json_schema=_constraint(body.format),
            # a last assistant message is continued, as Ollama does
            continue_last=messages[-1].role == "assistant",
            reply_fills_context=True,
        )

    # -- answers --
    @staticmethod
    def _final_stats(done: GenerationDone, started_ns: int) -> dict[str, Any]:
        return {
            "done": True,
            "done_reason": "length" if done.finish_reason == "length" else "stop",
            "total_duration": time.monotonic_ns() - started_ns,
            "load_duration": 0,
            "prompt_eval_count": done.usage.prompt_tokens,
            "prompt_eval_duration": int(done.timings.prompt_ms * 1e6),
            "eval_count": done.usage.completion_tokens,
            "eval_duration": int(done.timings.predicted_ms * 1e6),
        }

    @staticmethod
    def _load_answer(model: str, keep_alive: str | float | None, chat: bool) -> dict[str, Any]:
        """An empty prompt (or no messages) asks Ollama to load the model, or with keep_alive 0 to
        unload it; the model here is already loaded and stays so."""
        unload = keep_alive in (0, "0", "0s", "0m")
        answer: dict[str, Any] = {"model": model, "created_at": _timestamp()}
        answer.update({"message": {"role": "assistant", "content": ""}} if chat else {"response": ""})
        return {**answer, "done": True, "done_reason": "unload" if unload else "load"}

    async def generate(self, body: GenerateBody, request: Request) -> dict[str, Any]:
        model = self._check_model(body.model)
        if not body.prompt and not body.images:
            return self._load_answer(model, body.keep_alive, chat=False)
        return await self._complete(self.generate_request(body), model, request, chat=False)

    async def chat(self, body: ChatBody, request: Request) -> dict[str, Any]:
        model = self._check_model(body.model)
        if not body.messages:
            return self._load_answer(model, body.keep_alive, chat=True)
        return await self._complete(self.chat_request(body), model, request, chat=True)

    async def generate_stream(self, body: GenerateBody, request: Request) -> AsyncIterator[bytes]:
        model = self._check_model(body.model)
        if not body.prompt and not body.images:
            return _lines([self._load_answer(model, body.keep_alive, chat=False)])
        return await self._stream(self.generate_request(body), model, request, chat=False)

    async def chat_stream(self, body: ChatBody, request: Request) -> AsyncIterator[bytes]:
        model = self._check_model(body.model)
        if not body.messages:
            return _lines([self._load_answer(model, body.keep_alive, chat=True)])
        return await self._stream(self.chat_request(body), model, request, chat=True)

    async def _complete(
        self, gen: GenerationRequest, model: str, request: Request, *, chat: bool
    ) -> dict[str, Any]:
        started = time.monotonic_ns()
        async for event in follow(await generate_off_loop(self.engine, gen), request):
            if isinstance(event, GenerationDone):
                raise_if_failed(event)
                return {**_part(model, event.text, chat), **self._final_stats(event, started)}
        raise AssertionError("stream ended without a result")

    async def _stream(
        self, gen: GenerationRequest, model: str, request: Request, *, chat: bool
    ) -> AsyncIterator[bytes]:
        started = time.monotonic_ns()
        events = follow(await generate_off_loop(self.engine, gen), request)

        async def lines() -> AsyncIterator[bytes]:
            async for event in events:
                if isinstance(event, TextDelta):
                    if event.text:
                        yield _line({**_part(model, event.text, chat), "done": False})
                elif event.finish_reason == "error":
                    yield _line({"error": error_payload(event)["message"]})
                else:
                    yield _line({**_part(model, "", chat), **self._final_stats(event, started)})

        return lines()


def unsupported(call: str) -> NotSupported:
    return NotSupported(_UNSUPPORTED[call])


def _part(model: str, text: str, chat: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "created_at": _timestamp()}
    if chat:
        body["message"] = {"role": "assistant", "content": text}
    else:
        body["response"] = text
    return body


def _line(payload: dict[str, Any]) -> bytes:
    return (json.dumps(payload, ensure_ascii=False) + "\n").encode()


async def _lines(payloads: list[dict[str, Any]]) -> AsyncIterator[bytes]:
    for payload in payloads:
        yield _line(payload)
