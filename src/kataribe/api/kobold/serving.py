"""KoboldCpp-compatible serving, so KoboldAI Lite, SillyTavern and EasyNovelAssistant work unchanged."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from kataribe import __version__
from kataribe.api.kobold.jobs import KoboldJobs
from kataribe.api.kobold.schemas import DEFAULT_MAX_LENGTH, KoboldGenerateRequest
from kataribe.api.logit_bias import parse_logit_bias
from kataribe.api.sampler_fields import ROLE_PLAY_SAMPLERS, parse_dry_breakers
from kataribe.api.streaming import error_payload, follow, raise_if_failed, sse_event
from kataribe.engine.base import (
    ChatMessage,
    Engine,
    GenerationDone,
    GenerationEvent,
    GenerationRequest,
    SamplingParams,
    TextDelta,
)
from kataribe.engine.instruct_tags import (
    ALPACA,
    InstructTags,
    InstructText,
    derive_instruct_tags,
    replace_instruct_placeholders,
)
from kataribe.engine.off_loop import generate_off_loop
from kataribe.errors import InvalidRequest

KOBOLDCPP_VERSION = "1.102"
"""The KoboldCpp release whose API we follow; clients enable features by this number."""
KOBOLD_UNITED_VERSION = "1.2.5"


def kobold_finish(done: GenerationDone) -> str:
    # KoboldCpp says "stop" only when the model ended on its own (EOS); a stop sequence, an
    # abort or the length limit are all "length" there, and clients rely on that.
    return "stop" if done.finish_reason == "stop" and done.stop is None else "length"


@dataclass
class _Stats:
    started_at: float
    total_gens: int = 0
    last: GenerationDone | None = None
    last_label: str | None = None


class KoboldServing:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.stats = _Stats(started_at=time.time())
        self.jobs = KoboldJobs()
        self._tags: tuple[str, InstructTags] | None = None

    # -- info --
    def model(self) -> dict[str, str]:
        return {"result": f"koboldcpp/{self.engine.model_name}"}

    def version(self, protected: bool) -> dict[str, Any]:
        return {
            "result": "KoboldCpp",
            "version": KOBOLDCPP_VERSION,
            "protected": protected,
            "llm": True,
            "txt2img": False,
            "vision": False,
            "audio": False,
            "transcribe": False,
            "multiplayer": False,
            "websearch": False,
            "tts": False,
            "embeddings": False,
            "savedata": False,
            "admin": 0,
            "guidance": False,
            "jinja": False,
            "kataribe": __version__,
        }

    def max_context_length(self) -> dict[str, int]:
        return {"value": self.engine.capabilities().n_ctx}

    def max_length(self) -> dict[str, int]:
        return {"value": DEFAULT_MAX_LENGTH}

    def perf(self) -> dict[str, Any]:
        last = self.stats.last
        t = last.timings if last else None
        return {
            "last_process": round(t.prompt_ms / 1000, 3) if t else 0,
            "last_eval": round(t.predicted_ms / 1000, 3) if t else 0,
            "last_token_count": t.predicted_n if t else 0,
            "last_input_count": last.usage.prompt_tokens if last else 0,
            "last_cached_count": t.cache_n if t else 0,
            "last_process_speed": t.as_dict()["prompt_per_second"] if t else 0,
            "last_eval_speed": t.as_dict()["predicted_per_second"] if t else 0,
            "total_gens": self.stats.total_gens,
            "stop_reason": (1 if kobold_finish(last) == "stop" else 0) if last else -1,
            "queue": max(0, self.engine.queue_depth() - 1),
            "idle": 0 if self.engine.queue_depth() else 1,
            "uptime": round(time.time() - self.stats.started_at, 1),
        }

    def token_count(self, prompt: str, special: bool = True) -> dict[str, Any]:
        """``special``: "<|im_start|>" in the text is one special token (true) or plain text (false)."""
        if not special:
            try:
                ids = self.engine.tokenize(prompt, special=False)
                return {"value": len(ids), "ids": ids}
            except InvalidRequest:  # a remote server without a tokenizer: an estimate as below
                pass
        counted = self.engine.count_tokens(prompt)
        return {"value": counted.count, "ids": counted.ids or []}

    def instruct_tags(self) -> InstructTags:
        """The loaded model's chat tags, derived once per model (a remote server's are unknown here)."""
        name = self.engine.model_name
        if self._tags is None or self._tags[0] != name:
            remote = self.engine.capabilities().engine.startswith("remote")
            tags = ALPACA if remote else derive_instruct_tags(self._render_as_written)
            self._tags = (name, tags)
        return self._tags[1]

    def _render_as_written(self, messages: Sequence[ChatMessage], add_generation_prompt: bool) -> str:
        """The template without reshaping: a template that refuses a system role must say so here."""
        return self.engine.render_chat(messages, add_generation_prompt, reshape=False)

    # -- generation --
    def _instruct_text(self, body: KoboldGenerateRequest) -> InstructText:
        text = InstructText(memory=body.memory, prompt=body.prompt, stop=[s for s in body.stop_sequence if s])
        placeholders = "{{[" in text.memory + text.prompt or any("{{[" in s for s in text.stop)
        if not body.replace_instruct_placeholders or not placeholders:
            return text
        return replace_instruct_placeholders(text, self.instruct_tags())

    def _request(self, body: KoboldGenerateRequest) -> GenerationRequest:
        text = self._instruct_text(body)
        # KoboldCpp: use_default_badwordsids bans the end token unless ban_eos_token says otherwise
        ban_eos = body.use_default_badwordsids if body.ban_eos_token is None else body.ban_eos_token
        return GenerationRequest(
            prompt=text.memory + text.prompt,
            max_tokens=body.max_length,
            sampling=SamplingParams(
                temperature=body.temperature,
                top_p=body.top_p,
                top_k=body.top_k,
                min_p=body.min_p,
                typical_p=body.typical,
                repeat_penalty=body.rep_pen,
                repeat_last_n=body.rep_pen_range,
                presence_penalty=body.presence_penalty,
                seed=None if body.sampler_seed < 0 else body.sampler_seed,
                logit_bias=parse_logit_bias(body.logit_bias),
                top_n_sigma=body.nsigma if body.nsigma > 0 else -1.0,
                # KoboldCpp uses no breakers unless the client sends some
                dry_sequence_breakers=parse_dry_breakers(body.dry_sequence_breakers, []),
                banned_strings=list(body.banned_tokens or body.banned_strings or []),
                **{name: getattr(body, name) for name in ROLE_PLAY_SAMPLERS},
            ),
            stop=text.stop,
            grammar=body.grammar or None,
            truncate_prompt=True,
            max_context=body.max_context_length,
            ban_eos=ban_eos,
            label=body.genkey or None,
        )

    def _finished(self, done: GenerationDone, label: str | None) -> None:
        self.stats.total_gens += 1
        self.stats.last = done
        self.stats.last_label = label

    @staticmethod
    def _final_text(done: GenerationDone, trim_stop: bool) -> str:
        return done.text + (done.stop or "") if not trim_stop else done.text

    async def generate(self, body: KoboldGenerateRequest, request: Request) -> dict[str, Any]:
        stream = self.jobs.add(await generate_off_loop(self.engine, self._request(body)))
        async for event in follow(stream, request):
            if isinstance(event, GenerationDone):
                raise_if_failed(event)
                self._finished(event, body.genkey or None)
                return {
                    "results": [
                        {
                            "text": self._final_text(event, body.trim_stop),
                            "finish_reason": kobold_finish(event),
                            "prompt_tokens": event.usage.prompt_tokens,
                            "completion_tokens": event.usage.completion_tokens,
                        }
                    ]
                }
        raise AssertionError("stream ended without a result")

    async def generate_stream(self, body: KoboldGenerateRequest, request: Request) -> AsyncIterator[bytes]:
        """Queued now (a bad request is a 4xx before any byte); the response starts at once."""
        stream = self.jobs.add(await generate_off_loop(self.engine, self._request(body)))
        return self._events(follow(stream, request), body)

    async def _events(
        self, events: AsyncIterator[GenerationEvent], body: KoboldGenerateRequest
    ) -> AsyncIterator[bytes]:
        def message(token: str, finish: str | None) -> bytes:
            return sse_event(
                "message", json.dumps({"token": token, "finish_reason": finish}, ensure_ascii=False)
            )

        async for event in events:
            if isinstance(event, TextDelta):
                if event.text:
                    yield message(event.text, None)
                continue
            if event.finish_reason == "error":
                yield sse_event("error", json.dumps({"error": error_payload(event)}, ensure_ascii=False))
                yield message("", "length")
                return
            self._finished(event, body.genkey or None)
            if not body.trim_stop and event.stop:
                yield message(event.stop, None)
            yield message("", kobold_finish(event))

    def check(self, genkey: str) -> dict[str, Any]:
        """The text so far of this genkey's job; without one, of the job started without a genkey
        (KoboldCpp's rule: polling never shows another user's text)."""
        job = self.jobs.keyed(genkey) if genkey else self.jobs.unkeyed()
        if job is not None:
            return {"results": [{"text": job.text_so_far}]}
        last = self.stats.last
        if last is not None and (genkey or None) == self.stats.last_label:
            return {"results": [{"text": last.text}]}
        return {"results": [{"text": ""}]}

    def abort(self, genkey: str) -> dict[str, str]:
        """Stop this genkey's job; without one, the running job of this API (never a /v1 or role-play one)."""
        job = self.jobs.keyed(genkey) if genkey else self.jobs.current()
        if job is None:
            return {"success": "false", "done": "false"}
        job.cancel()
        return {"success": "true", "done": "true"}
