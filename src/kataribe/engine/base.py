"""The engine vocabulary: requests, stream events, usage/timings, and the Engine protocol."""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

FinishReason = Literal["stop", "length", "cancelled", "error"]


@dataclass
class ChatMessage:
    role: str
    content: str
    name: str | None = None


DRY_SEQUENCE_BREAKERS = ("\n", ":", '"', "*")
"""llama.cpp's default DRY sequence breakers: a repeat across one of these is not penalized."""


@dataclass
class SamplingParams:
    """Sampler settings. Defaults are neutral (no penalties) so clients get what they ask for."""

    temperature: float = 0.8
    top_p: float = 0.95
    top_k: int = 40
    min_p: float = 0.05
    typical_p: float = 1.0
    repeat_penalty: float = 1.0
    repeat_last_n: int = 64
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    seed: int | None = None
    logit_bias: dict[int, float] = field(default_factory=dict)
    # Samplers role-play users ask for by name (llama-server's names and defaults; all off by default).
    dynatemp_range: float = 0.0
    """Dynamic temperature: the temperature moves within ±range with the entropy (0 = off)."""
    dynatemp_exponent: float = 1.0
    top_n_sigma: float = -1.0
    """Keep tokens within n standard deviations of the top logit (-1 = off)."""
    xtc_probability: float = 0.0
    """XTC: with this probability, remove every top choice above the threshold but the least likely."""
    xtc_threshold: float = 0.1
    dry_multiplier: float = 0.0
    """DRY: penalize tokens that would extend a sequence already in the context (0 = off)."""
    dry_base: float = 1.75
    dry_allowed_length: int = 2
    dry_penalty_last_n: int = -1
    """How many recent tokens DRY looks at (-1 = the whole context, 0 = off)."""
    dry_sequence_breakers: list[str] = field(default_factory=lambda: list(DRY_SEQUENCE_BREAKERS))
    mirostat: int = 0
    """0 = off, 1 = Mirostat, 2 = Mirostat 2.0 (replaces top-k/top-p/min-p/typical/XTC)."""
    mirostat_tau: float = 5.0
    mirostat_eta: float = 0.1
    banned_strings: list[str] = field(default_factory=list)
    """Phrases never to produce (case-insensitive): the engine backs up and samples again."""


@dataclass
class GenerationRequest:
    """One generation. Exactly one of ``prompt`` (raw text) or ``messages`` (chat) is set."""

    prompt: str | None = None
    messages: list[ChatMessage] | None = None
    max_tokens: int | None = None
    sampling: SamplingParams = field(default_factory=SamplingParams)
    stop: list[str] = field(default_factory=list)
    grammar: str | None = None
    """A GBNF grammar (embedded engine) constraining the output."""
    json_schema: dict[str, Any] | None = None
    """Constrain output to JSON matching this schema ({} means any JSON object)."""
    logprobs: int | None = None
    """Return log-probabilities with this many top alternatives per token (0 = only the chosen)."""
    add_generation_prompt: bool = True
    continue_last: bool = False
    """Chat only: the last message is an unfinished assistant message for the model to go on with."""
    truncate_prompt: bool = False
    """Drop the oldest prompt tokens instead of failing when the prompt is too long (KoboldCpp)."""
    max_context: int | None = None
    """With truncate_prompt: the client's context limit, when smaller than the engine's."""
    reply_fills_context: bool = False
    """max_tokens is an upper bound: a reply with less room than that stops where the context ends
    (llama-server's n_predict, Ollama's num_predict), instead of a 400."""
    ban_eos: bool = False
    """Never end on the end-of-sequence token (generate until max_tokens or a stop string)."""
    label: str | None = None
    """A caller-chosen key to find this job again (KoboldCpp's genkey)."""


@dataclass
class TokenLogprob:
    token: str
    logprob: float
    bytes: list[int]
    top: list[tuple[str, float, list[int]]] = field(default_factory=list)


@dataclass
class TextDelta:
    text: str
    logprobs: list[TokenLogprob] = field(default_factory=list)


@dataclass
class Timings:
    """Shaped like llama-server's ``timings`` object."""

    prompt_n: int = 0
    """Prompt tokens evaluated for this request."""
    cache_n: int = 0
    """Prompt tokens reused from the cache (not evaluated)."""
    prompt_ms: float = 0.0
    predicted_n: int = 0
    predicted_ms: float = 0.0
    estimated: bool = False
    """True when token counts are estimates (a remote server that reported none)."""
    messages_normalized: tuple[str, ...] = ()
    """How the chat messages were reshaped for a template that refused them as sent (names)."""

    def as_dict(self) -> dict[str, Any]:
        prompt_s = self.prompt_ms / 1000
        predicted_s = self.predicted_ms / 1000
        out: dict[str, Any] = {
            "prompt_n": self.prompt_n,
            "cache_n": self.cache_n,
            "prompt_ms": round(self.prompt_ms, 3),
            "prompt_per_token_ms": round(self.prompt_ms / self.prompt_n, 3) if self.prompt_n else 0.0,
            "prompt_per_second": round(self.prompt_n / prompt_s, 3) if prompt_s > 0 else 0.0,
            "predicted_n": self.predicted_n,
            "predicted_ms": round(self.predicted_ms, 3),
            "predicted_per_token_ms": (
                round(self.predicted_ms / self.predicted_n, 3) if self.predicted_n else 0.0
            ),
            "predicted_per_second": (round(self.predicted_n / predicted_s, 3) if predicted_s > 0 else 0.0),
        }
        if self.estimated:
            out["estimated"] = True
        if self.messages_normalized:
            out["messages_normalized"] = list(self.messages_normalized)
        return out


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    estimated: bool = False

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def as_openai(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
            "prompt_tokens_details": {"cached_tokens": self.cached_tokens},
        }
        if self.estimated:
            out["estimated"] = True
        return out


@dataclass
class GenerationDone:
    finish_reason: FinishReason
    usage: Usage
    timings: Timings
    text: str
    """The whole generated text (what was streamed)."""
    stop: str | None = None
    error: Exception | None = None


GenerationEvent = TextDelta | GenerationDone


@dataclass
class TokenCount:
    count: int
    ids: list[int] | None
    estimated: bool = False


@dataclass
class Capabilities:
    engine: str
    model: str
    n_ctx: int
    n_ctx_train: int | None
    chat_template: bool
    grammar: bool
    logprobs: bool
    exact_token_counts: bool
    prefix_cache: bool
    gpu_layers: int = 0


# The loop a stream made in a worker thread hands its events to (engine/off_loop.py sets it).
STREAM_LOOP: ContextVar[asyncio.AbstractEventLoop | None] = ContextVar("kataribe_stream_loop", default=None)


class GenerationStream:
    """The events of one generation, produced by an engine thread, read sync or async.

    Created inside a running event loop, events are handed to that loop; otherwise they go
    to a thread-safe queue for a blocking reader. ``cancel()`` is safe from any thread.
    """

    def __init__(self, request: GenerationRequest) -> None:
        self.request = request
        self.created = time.monotonic()
        self.cancelled = threading.Event()
        self.started = threading.Event()
        self.finished = threading.Event()
        self.text_so_far = ""
        self.result: GenerationDone | None = None
        try:
            self._loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = STREAM_LOOP.get()
        self._aq: asyncio.Queue[GenerationEvent] | None = asyncio.Queue() if self._loop is not None else None
        self._q: queue.SimpleQueue[GenerationEvent] = queue.SimpleQueue()
        self._cancel_hooks: list[Callable[[], None]] = []
        self._hooks_lock = threading.Lock()

    def cancel(self) -> None:
        with self._hooks_lock:
            self.cancelled.set()
            hooks = list(self._cancel_hooks)
        for hook in hooks:
            hook()

    def on_cancel(self, hook: Callable[[], None]) -> Callable[[], None]:
        """Run ``hook`` when cancelled (at once if already); returns a function that unregisters it."""
        with self._hooks_lock:
            already = self.cancelled.is_set()
            if not already:
                self._cancel_hooks.append(hook)
        if already:
            hook()

        def remove() -> None:
            with self._hooks_lock:
                if hook in self._cancel_hooks:
                    self._cancel_hooks.remove(hook)

        return remove

    # -- producer side (engine thread) --
    def emit(self, event: GenerationEvent) -> None:
        if isinstance(event, TextDelta):
            self.text_so_far += event.text
        else:
            self.result = event
        if self._loop is not None and self._aq is not None:
            try:
                self._loop.call_soon_threadsafe(self._aq.put_nowait, event)
            except RuntimeError:  # the loop is closed: nobody is listening any more
                self.cancelled.set()
        else:
            self._q.put(event)
        if isinstance(event, GenerationDone):
            self.finished.set()

    # -- consumer side --
    def __iter__(self) -> Iterator[GenerationEvent]:
        if self._aq is not None:
            raise RuntimeError("this stream was created in an event loop; iterate it with async for")
        while True:
            event = self._q.get()
            yield event
            if isinstance(event, GenerationDone):
                return

    async def __aiter__(self) -> AsyncIterator[GenerationEvent]:
        if self._aq is None:
            raise RuntimeError("this stream was created outside an event loop; iterate it with for")
        while True:
            event = await self._aq.get()
            yield event
            if isinstance(event, GenerationDone):
                return

    async def next_event(self, timeout: float) -> GenerationEvent | None:
        """The next event, or None after ``timeout`` seconds (lets callers poll for disconnects)."""
        assert self._aq is not None
        try:
            return await asyncio.wait_for(self._aq.get(), timeout)
        except TimeoutError:
            return None

    def collect(self) -> GenerationDone:
        """Block until done and return the final event."""
        for event in self:
            if isinstance(event, GenerationDone):
                return event
        raise AssertionError("unreachable")


@runtime_checkable
class Engine(Protocol):
    """What everything above the engine layer uses; nothing there knows local from remote."""

    @property
    def model_name(self) -> str: ...

    def capabilities(self) -> Capabilities: ...

    def tokenize(self, text: str, *, special: bool = False) -> list[int]: ...

    def count_tokens(self, text: str) -> TokenCount: ...

    def detokenize(self, ids: Sequence[int]) -> str:
        """The text of these token ids (special tokens left out)."""
        ...

    def render_chat(
        self, messages: Sequence[ChatMessage], add_generation_prompt: bool = True, *, reshape: bool = True
    ) -> str:
        """The prompt text a chat request becomes (or an approximation for remote engines). With
        ``reshape=False`` a template that refuses the messages raises instead of getting them reshaped."""
        ...

    def generate(self, request: GenerationRequest) -> GenerationStream: ...

    def find_job(self, label: str | None) -> GenerationStream | None:
        """The running or queued job with this label, or the running one when label is None."""
        ...

    def queue_depth(self) -> int: ...

    def close(self) -> None: ...
