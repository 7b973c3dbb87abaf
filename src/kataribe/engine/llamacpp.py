"""EmbeddedEngine: llama.cpp in-process; one worker thread owns the context and serves a FIFO queue."""

from __future__ import annotations

import ctypes
import json
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import llama_cpp
import numpy as np
from llama_cpp import Llama
from llama_cpp.llama_grammar import JSON_GBNF, LlamaGrammar

from kataribe.engine.abort import AbortFlag
from kataribe.engine.bans import PhraseGuard
from kataribe.engine.base import (
    Capabilities,
    ChatMessage,
    FinishReason,
    GenerationDone,
    GenerationRequest,
    GenerationStream,
    SamplingParams,
    TextDelta,
    Timings,
    TokenCount,
    TokenLogprob,
    Usage,
)
from kataribe.engine.chat_template import ChatTemplate, Rendered
from kataribe.engine.gguf_meta import ModelInfo, inspect_gguf
from kataribe.engine.kvcache import KvStateCache, common_prefix_len
from kataribe.engine.prompt_bound import PromptBound
from kataribe.engine.prompt_fit import fit_prompt
from kataribe.engine.sampling import TokenSampler, build_sampler
from kataribe.engine.textstream import StopStringFilter, Utf8StreamDecoder
from kataribe.engine.token_text import TokenText
from kataribe.errors import InvalidRequest, ModelLoadError

log = logging.getLogger(__name__)

DEFAULT_CTX_CAP = 8192
"""Never default to a model's full trained context (Mistral-Nemo claims 1M and runs out of RAM)."""
MIN_SNAPSHOT_TOKENS = 64
MAX_ROLLBACKS = 64
"""Banned phrases: after this many step-backs in one reply, the rest of the reply is let through."""
"""A context this short is cheap to re-evaluate and not worth a saved state."""


def physical_cores() -> int:
    import os

    import psutil

    return psutil.cpu_count(logical=False) or os.cpu_count() or 1


def pick_context_length(requested: int | None, trained: int | None) -> int:
    if requested:
        return requested
    return min(trained or DEFAULT_CTX_CAP, DEFAULT_CTX_CAP)


@dataclass
class EmbeddedConfig:
    model_path: Path
    n_ctx: int | None = None
    n_threads: int | None = None
    n_gpu_layers: int | None = None
    n_batch: int = 512
    kv_cache_ram_mb: int = 1024
    chat_template: str | None = None
    alias: str | None = None


@dataclass
class _PreparedJob:
    stream: GenerationStream
    tokens: list[int]
    max_tokens: int
    sampler: TokenSampler
    sampling: SamplingParams
    normalized: tuple[str, ...] = ()
    """How the chat template needed the messages reshaped (Timings.messages_normalized)."""


class EmbeddedEngine:
    """Runs a GGUF model with llama-cpp-python.

    One worker thread owns the llama context. Requests queue FIFO and run one at a time to
    completion, so a second client never cuts off the first one's stream. Each finished
    conversation's KV state is kept (within a RAM budget) so returning to it evaluates only
    the new tokens.
    """

    def __init__(self, config: EmbeddedConfig) -> None:
        self.config = config
        path = config.model_path
        if not path.is_file():
            raise ModelLoadError(f"Model file not found: {path}. Pass --model with a GGUF file.")
        self.info: ModelInfo = inspect_gguf(path)
        self.n_threads = config.n_threads or physical_cores()
        gpu = llama_cpp.llama_supports_gpu_offload()
        self.n_gpu_layers = (-1 if gpu else 0) if config.n_gpu_layers is None else config.n_gpu_layers
        n_ctx = pick_context_length(config.n_ctx, self.info.context_length)
        try:
            self._llm = Llama(
                model_path=str(path),
                n_ctx=n_ctx,
                n_batch=min(config.n_batch, n_ctx),
                n_threads=self.n_threads,
                n_threads_batch=self.n_threads,
                n_gpu_layers=self.n_gpu_layers,
                logits_all=False,
                verbose=False,
            )
        except (ValueError, RuntimeError) as exc:
            raise ModelLoadError(
                f"llama.cpp could not load {path.name} with a {n_ctx}-token context: {exc}. "
                "Try a smaller --ctx-size or fewer --gpu-layers."
            ) from exc
        self._vocab = self._llm._model.vocab
        self.n_ctx = self._llm.n_ctx()
        self.n_vocab = self._llm.n_vocab()
        self.add_bos = bool(self._llm._model.add_bos_token())
        self._bos = self._llm.token_bos()
        self._text = TokenText(self._vocab, self.n_vocab)
        self._prompt_bound = PromptBound.of_llama(self._vocab, self.n_vocab)
        eos = self._llm.token_eos()
        self._template = ChatTemplate(
            config.chat_template or self.info.chat_template,
            bos=self._text.special_text(self._bos),
            eos=self._text.special_text(eos),
            eos_id=eos,
        )
        self._kv_cache = KvStateCache(config.kv_cache_ram_mb * 1024 * 1024)
        self._abort = AbortFlag()

        self._queue: deque[_PreparedJob] = deque()
        self._current: _PreparedJob | None = None
        self._cv = threading.Condition()
        self._closed = False
        self._worker = threading.Thread(target=self._work, name="kataribe-llama", daemon=True)
        self._worker.start()

    # -- Engine protocol --------------------------------------------------------------
    @property
    def model_name(self) -> str:
        return self.config.alias or self.config.model_path.stem

    def capabilities(self) -> Capabilities:
        return Capabilities(
            engine="llama.cpp",
            model=self.model_name,
            n_ctx=self.n_ctx,
            n_ctx_train=self.info.context_length,
            chat_template=self.info.has_chat_template or bool(self.config.chat_template),
            grammar=True,
            logprobs=True,
            exact_token_counts=True,
            prefix_cache=True,
            gpu_layers=self.n_gpu_layers,
        )

    def tokenize(self, text: str, *, special: bool = False, add_bos: bool = False) -> list[int]:
        tokens = self._llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=special)
        return list(tokens)

    def count_tokens(self, text: str) -> TokenCount:
        ids = self.tokenize(text, special=True)
        return TokenCount(len(ids), ids)

    def detokenize(self, ids: Sequence[int]) -> str:
        bad = next((i for i in ids if not 0 <= i < self.n_vocab), None)
        if bad is not None:
            raise InvalidRequest(
                f"Token id {bad} is not in the vocabulary (0..{self.n_vocab - 1}).", param="ids"
            )
        return b"".join(self._text.piece(i, special=False) for i in ids).decode("utf-8", "replace")

    def render_chat(
        self, messages: Sequence[ChatMessage], add_generation_prompt: bool = True, *, reshape: bool = True
    ) -> str:
        return self._template.render(messages, add_generation_prompt, reshape=reshape)

    def generate(self, request: GenerationRequest) -> GenerationStream:
        """Validate and tokenize now (errors surface before streaming); generate on the worker."""
        tokens, normalized = self._prompt_tokens(request)
        head = 1 if self.add_bos and tokens and tokens[0] == self._bos else 0
        fitted = fit_prompt(tokens, request, self.n_ctx, head=head)
        tokens, max_tokens = fitted.tokens, fitted.max_tokens
        sampling = request.sampling
        if request.ban_eos:
            eog = [t for t in (self._llm.token_eos(), self._llm._model.token_eot()) if t >= 0]
            sampling = replace(sampling, logit_bias={**sampling.logit_bias, **dict.fromkeys(eog, -math.inf)})
        if any(sampling.banned_strings) and (
            request.logprobs is not None or request.grammar or request.json_schema
        ):
            raise InvalidRequest(
                "banned_strings cannot be combined with logprobs, a grammar or a JSON schema.",
                param="banned_strings",
            )
        sampler = build_sampler(self._llm, sampling, grammar=self._grammar_for(request), history=tokens)
        stream = GenerationStream(request)
        job = _PreparedJob(stream, tokens, max_tokens, sampler, sampling, normalized)
        with self._cv:
            if self._closed:
                raise ModelLoadError("The engine is shut down.")
            self._queue.append(job)
            self._cv.notify()
        return stream

    def find_job(self, label: str | None) -> GenerationStream | None:
        with self._cv:
            jobs = ([self._current] if self._current else []) + list(self._queue)
        for job in jobs:
            if label is None or job.stream.request.label == label:
                return job.stream
        return None

    def queue_depth(self) -> int:
        with self._cv:
            return len(self._queue) + (1 if self._current else 0)

    def close(self) -> None:
        with self._cv:
            self._closed = True
            pending = list(self._queue)
            self._queue.clear()
            if self._current:
                self._current.stream.cancel()
            self._cv.notify_all()
        for job in pending:
            job.stream.cancel()
            job.stream.emit(GenerationDone("cancelled", Usage(), Timings(), ""))
        self._worker.join(timeout=30)
        self._kv_cache.clear()
        self._llm.close()

    # -- preparation (caller's thread) -----------------------------------------------
    def _prompt_tokens(self, request: GenerationRequest) -> tuple[list[int], tuple[str, ...]]:
        """The prompt's tokens, and how the chat messages were reshaped for the template (if they were)."""
        if request.messages is not None and request.continue_last:
            rendered = self._template.render_continuation(request.messages)
        elif request.messages is not None:
            rendered = self._template.render_noting(request.messages, request.add_generation_prompt)
        elif request.prompt is not None:
            rendered = Rendered(request.prompt)
        else:
            raise InvalidRequest("Send either 'prompt' or 'messages'.", param="prompt")
        text = rendered.text
        if request.truncate_prompt:  # only its end can be kept: tokenize no more than that
            text = self._prompt_bound.tail(text, tokens=self.n_ctx)
        else:  # a prompt too long for the context is refused untokenized
            self._prompt_bound.check(text, reserve=0, n_ctx=self.n_ctx)  # max_tokens: the exact check
        tokens = self.tokenize(text, special=True, add_bos=self.add_bos)
        if self.add_bos and len(tokens) > 1 and tokens[0] == tokens[1] == self._bos:
            tokens = tokens[1:]  # the template already wrote a BOS
        if not tokens:
            tokens = [self._bos if self._bos >= 0 else self._llm.token_eos()]
        return tokens, rendered.normalized

    def _grammar_for(self, request: GenerationRequest) -> LlamaGrammar | None:
        try:
            if request.grammar:
                return LlamaGrammar.from_string(request.grammar, verbose=False)
            if request.json_schema is not None:
                if not request.json_schema:
                    return LlamaGrammar.from_string(JSON_GBNF, verbose=False)
                return LlamaGrammar.from_json_schema(json.dumps(request.json_schema), verbose=False)
        # llama_cpp's schema converter asserts on schemas it does not know ({"": null})
        except (ValueError, RuntimeError, TypeError, KeyError, AssertionError) as exc:
            raise InvalidRequest(
                f"The grammar or JSON schema could not be compiled: {exc}.", param="response_format"
            ) from exc
        return None

    # -- worker thread ----------------------------------------------------------------
    def _work(self) -> None:
        while True:
            with self._cv:
                while not self._queue and not self._closed:
                    self._cv.wait()
                if self._closed:
                    return
                job = self._queue.popleft()
                self._current = job
            try:
                self._run(job)
            except Exception as exc:  # never let one request kill the worker
                log.exception("generation failed")
                if not job.stream.finished.is_set():
                    job.stream.emit(
                        GenerationDone("error", Usage(), Timings(), job.stream.text_so_far, error=exc)
                    )
            finally:
                job.sampler.close()
                with self._cv:
                    self._current = None

    def _live_tokens(self) -> list[int]:
        tokens: list[int] = self._llm.input_ids[: self._llm.n_tokens].tolist()
        return tokens

    def _select_state(self, tokens: list[int]) -> int:
        """Make the context hold the longest available prefix of ``tokens``; return its length."""
        live = self._live_tokens()
        live_prefix = common_prefix_len(live, tokens)
        match = self._kv_cache.best_match(tokens)
        discarded = len(live) - live_prefix
        if (
            len(live) >= MIN_SNAPSHOT_TOKENS
            and discarded >= max(MIN_SNAPSHOT_TOKENS, len(live) // 4)
            and not self._kv_cache.covers(live)
        ):
            self._kv_cache.put(live, self._save_seq())
        if match is not None and match[0] > live_prefix:
            prefix, state = match
            self._load_seq(state.tokens, state.data)
            return prefix
        return live_prefix

    def _save_seq(self) -> bytes:
        ctx = self._llm.ctx
        size = llama_cpp.llama_state_seq_get_size(ctx, 0)
        buf = (ctypes.c_uint8 * size)()
        written = llama_cpp.llama_state_seq_get_data(ctx, buf, size, 0)
        return bytes(buf)[:written]

    def _load_seq(self, tokens: Sequence[int], data: bytes) -> None:
        ctx = self._llm.ctx
        self._llm._ctx.kv_cache_clear()
        buf = (ctypes.c_uint8 * len(data)).from_buffer_copy(data)
        if llama_cpp.llama_state_seq_set_data(ctx, buf, len(data), 0) == 0:
            self._llm.n_tokens = 0
            return
        self._llm.input_ids[: len(tokens)] = tokens
        self._llm.n_tokens = len(tokens)

    def _eval_prompt(self, tokens: list[int], start: int, stream: GenerationStream) -> bool:
        """Evaluate tokens[start:]; False if cancelled part-way (the context stays consistent)."""
        llm = self._llm
        llm.n_tokens = start
        flag = self._abort
        flag.clear()
        flag.install(llm.ctx)
        unregister = stream.on_cancel(flag.set)
        try:
            llm.eval(tokens[start:])
        except RuntimeError:
            if stream.cancelled.is_set():
                return False
            raise
        finally:
            unregister()
            AbortFlag.uninstall(llm.ctx)
            flag.clear()
        return not stream.cancelled.is_set()

    def _run(self, job: _PreparedJob) -> None:
        stream, tokens = job.stream, job.tokens
        request = stream.request
        stream.started.set()
        if stream.cancelled.is_set():
            stream.emit(GenerationDone("cancelled", Usage(len(tokens)), Timings(), ""))
            return
        t0 = time.perf_counter()
        # A prompt fully in the cache still needs its last token decoded to get fresh logits.
        reused = min(self._select_state(tokens), len(tokens) - 1)
        if not self._eval_prompt(tokens, reused, stream):
            stream.emit(GenerationDone("cancelled", Usage(len(tokens), 0, reused), Timings(), ""))
            return
        t1 = time.perf_counter()
        timings = Timings(
            prompt_n=len(tokens) - reused,
            cache_n=reused,
            prompt_ms=(t1 - t0) * 1000,
            messages_normalized=job.normalized,
        )

        decoder = Utf8StreamDecoder()
        stops = StopStringFilter(request.stop)
        guard = PhraseGuard(job.sampling.banned_strings)
        banned_at: dict[int, set[int]] = {}  # position in the reply -> tokens banned there
        generated: list[int] = []
        rollbacks = 0
        want_logprobs = request.logprobs is not None
        pending_lp: list[TokenLogprob] = []
        text_parts: list[str] = []
        finish: FinishReason = "length"
        stop_hit: str | None = None
        n_gen = 0
        llm = self._llm
        vocab = self._vocab
        while n_gen < job.max_tokens:
            if stream.cancelled.is_set():
                finish = "cancelled"
                break
            if llm.n_tokens >= self.n_ctx:
                break
            if n_gen in banned_at:
                self._forbid(banned_at[n_gen])
            token = job.sampler.sample(llm._ctx)
            if want_logprobs:
                pending_lp.append(self._text.logprob_entry(llm.ctx, token, request.logprobs or 0))
            if llama_cpp.llama_vocab_is_eog(vocab, token):
                finish = "stop"
                break
            n_gen += 1
            generated.append(token)
            text = decoder.feed(self._text.piece(token, special=False))
            if guard.phrases:
                step = guard.push(text)
                if step.rollback_to is not None and rollbacks < MAX_ROLLBACKS:
                    rollbacks += 1
                    back = step.rollback_to
                    banned_at = {k: v for k, v in banned_at.items() if k <= back}
                    banned_at.setdefault(back, set()).add(generated[back])
                    guard.rollback(back)
                    del generated[back:]
                    n_gen = back
                    decoder = self._rewind(job, generated)
                    continue
                text = step.released + (guard.give_up() if step.rollback_to is not None else "")
            scan = stops.feed(text) if text else None
            if scan is not None and (scan.text or (want_logprobs and pending_lp)):
                text_parts.append(scan.text)
                stream.emit(TextDelta(scan.text, pending_lp))
                pending_lp = []
            if scan is not None and scan.stopped:
                finish, stop_hit = "stop", scan.stop
                llm.eval([token])  # keep the context in step with what the model produced
                break
            llm.eval([token])
        tail = ""
        if stop_hit is None:
            # A reply cut short never ends in half a character (U+FFFD): its bytes are dropped.
            if finish in ("length", "cancelled"):
                decoder.drop_incomplete()
            scan = stops.feed(guard.flush() + decoder.flush())
            tail = scan.text if scan.stopped else scan.text + stops.flush()
            if scan.stopped:
                finish, stop_hit = "stop", scan.stop
        if tail or pending_lp:
            text_parts.append(tail)
            stream.emit(TextDelta(tail, pending_lp))
        timings.predicted_n = n_gen
        timings.predicted_ms = (time.perf_counter() - t1) * 1000
        stream.emit(
            GenerationDone(
                finish,
                Usage(prompt_tokens=len(tokens), completion_tokens=n_gen, cached_tokens=reused),
                timings,
                "".join(text_parts),
                stop=stop_hit,
            )
        )

    def _forbid(self, tokens: set[int]) -> None:
        """No token in ``tokens`` may be sampled next: their logits become -inf in place."""
        ptr = llama_cpp.llama_get_logits_ith(self._llm.ctx, -1)
        logits = np.ctypeslib.as_array(ptr, shape=(self.n_vocab,))
        logits[list(tokens)] = -np.inf

    def _rewind(self, job: _PreparedJob, kept: list[int]) -> Utf8StreamDecoder:
        """Roll the context back to the prompt plus ``kept`` (fresh logits for the next position),
        with a sampler and a UTF-8 decoder in the state they had there."""
        llm = self._llm
        sequence = [*job.tokens, *kept]
        llm.n_tokens = len(sequence) - 1
        llm.eval(sequence[-1:])
        job.sampler.close()
        job.sampler = build_sampler(llm, job.sampling, grammar=None, history=sequence)
        decoder = Utf8StreamDecoder()
        for token in kept:  # restores bytes still waiting for the rest of their character
            decoder.feed(self._text.piece(token, special=False))
        return decoder
