"""RemoteEngine: a model served elsewhere over the OpenAI API (vLLM, llama-server, Ollama, LM Studio...)."""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from kataribe.engine.base import (
    Capabilities,
    ChatMessage,
    FinishReason,
    GenerationDone,
    GenerationRequest,
    GenerationStream,
    TextDelta,
    Timings,
    TokenCount,
    TokenLogprob,
    Usage,
)
from kataribe.engine.remote_request import build_payload
from kataribe.engine.textstream import ReplacementTailHold, StopStringFilter
from kataribe.errors import BackendError, InvalidRequest, KataribeError, ModelLoadError

log = logging.getLogger(__name__)

_CJK = re.compile(r"[\u3000-\u30ff\u3400-\u9fff\uf900-\ufaff\uff00-\uffef\uac00-\ud7af]")


def estimate_tokens(text: str) -> int:
    """A rough count when the server cannot tokenize: CJK ~1 token per character, else ~4 chars."""
    cjk = len(_CJK.findall(text))
    return cjk + max(0, len(text) - cjk + 3) // 4


@dataclass
class RemoteConfig:
    base_url: str
    api_key: str | None = None
    model: str | None = None
    n_ctx: int | None = None
    timeout_s: float = 600.0


def split_base_url(url: str) -> tuple[str, str]:
    """(root, api_base): 'http://h:8000/v1' and 'http://h:8000' both give root http://h:8000."""
    url = url.strip().rstrip("/")
    if not re.match(r"^https?://", url):
        raise ModelLoadError(f"The remote URL '{url}' must start with http:// or https://.")
    root = url[: -len("/v1")] if url.endswith("/v1") else url
    return root, root + "/v1"


class RemoteEngine:
    """Drives any OpenAI-compatible server; maps sampler names to what that server expects."""

    def __init__(self, config: RemoteConfig) -> None:
        self.config = config
        self.root, self.api_base = split_base_url(config.base_url)
        headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
        self._http = httpx.Client(headers=headers, timeout=httpx.Timeout(config.timeout_s, connect=10.0))
        self.kind = "openai"
        self._model = config.model
        self._n_ctx = config.n_ctx
        self._discover()
        self._tokenize_route: str | bool | None = False  # False: not probed yet; None: none works
        self._detokenize_route: tuple[str, str] | None = None  # (route, answer key) once one worked
        self._jobs: list[GenerationStream] = []
        self._lock = threading.Lock()

    # -- discovery --
    def _discover(self) -> None:
        try:
            resp = self._http.get(f"{self.api_base}/models")
        except httpx.HTTPError as exc:
            raise ModelLoadError(
                f"Cannot reach the remote server at {self.api_base}: {exc}. Is it running?"
            ) from exc
        if resp.status_code in (401, 403):
            raise ModelLoadError(
                f"The remote server at {self.root} refused the API key (HTTP {resp.status_code})."
            )
        if resp.status_code >= 400:
            raise ModelLoadError(
                f"{self.api_base}/models answered HTTP {resp.status_code}; is this an OpenAI API?"
            )
        models = resp.json().get("data", [])
        entry = next((m for m in models if m.get("id") == self._model), models[0] if models else {})
        if self._model is None:
            if not entry:
                raise ModelLoadError(f"The remote server at {self.root} lists no models.")
            self._model = str(entry["id"])
        owner = str(entry.get("owned_by", "")).lower()
        if "vllm" in owner:
            self.kind = "vllm"
            self._n_ctx = self._n_ctx or entry.get("max_model_len")
        elif owner in ("llamacpp", "llama.cpp"):
            self.kind = "llama-server"
        elif owner == "me":
            self.kind = "llama-cpp-python"
        elif owner == "koboldcpp":
            self.kind = "koboldcpp"
        if self.kind in ("llama-server", "openai"):
            self._probe_llama_server_props()

    def _probe_llama_server_props(self) -> None:
        try:
            resp = self._http.get(f"{self.root}/props", timeout=5)
        except httpx.HTTPError:
            return
        if resp.status_code == 200 and "default_generation_settings" in resp.text:
            self.kind = "llama-server"
            settings = resp.json().get("default_generation_settings", {})
            self._n_ctx = self._n_ctx or settings.get("n_ctx")

    # -- Engine protocol --
    @property
    def model_name(self) -> str:
        assert self._model is not None
        return self._model

    def capabilities(self) -> Capabilities:
        return Capabilities(
            engine=f"remote:{self.kind}",
            model=self.model_name,
            n_ctx=int(self._n_ctx or 8192),
            n_ctx_train=None,
            chat_template=True,
            grammar=self.kind in ("llama-server", "llama-cpp-python", "vllm", "koboldcpp"),
            logprobs=True,
            exact_token_counts=self._tokenize_route not in (None,),
            prefix_cache=self.kind in ("llama-server", "vllm", "koboldcpp"),
        )

    def _tokenize_candidates(self, text: str) -> Iterator[tuple[str, dict[str, Any], str]]:
        # (route, body, key in the answer). llama-server and vLLM share /tokenize with different
        # bodies; each ignores the other's fields.
        yield (
            f"{self.root}/tokenize",
            {
                "content": text,
                "prompt": text,
                "model": self.model_name,
                "add_special": False,
                "add_special_tokens": False,
            },
            "tokens",
        )
        yield f"{self.root}/extras/tokenize", {"input": text, "model": self.model_name}, "tokens"
        yield f"{self.root}/api/extra/tokencount", {"prompt": text}, "ids"

    def _remote_tokenize(self, text: str) -> list[int] | None:
        for route, body, key in self._tokenize_candidates(text):
            if self._tokenize_route not in (False, route):
                continue
            try:
                resp = self._http.post(route, json=body, timeout=30)
                if resp.status_code == 200 and isinstance(resp.json().get(key), list):
                    self._tokenize_route = route
                    return [int(t) if not isinstance(t, dict) else int(t["id"]) for t in resp.json()[key]]
            except (httpx.HTTPError, ValueError, KeyError, TypeError):
                pass
            if self._tokenize_route == route:  # it worked before; a transient failure
                return None
        if self._tokenize_route is False:
            self._tokenize_route = None
        return None

    def tokenize(self, text: str, *, special: bool = False) -> list[int]:
        ids = self._remote_tokenize(text)
        if ids is None:
            raise InvalidRequest(f"The remote server ({self.kind}) offers no tokenizer endpoint.")
        return ids

    def count_tokens(self, text: str) -> TokenCount:
        ids = self._remote_tokenize(text) if self._tokenize_route is not None else None
        if ids is None:
            return TokenCount(estimate_tokens(text), None, estimated=True)
        return TokenCount(len(ids), ids)

    def detokenize(self, ids: Sequence[int]) -> str:
        """The server's own detokenizer: llama-server, vLLM, llama-cpp-python's server or KoboldCpp."""
        tokens = [int(i) for i in ids]
        candidates = [  # (route, body, key in the answer); the first that answers is kept
            (f"{self.root}/detokenize", {"tokens": tokens, "model": self.model_name}, "content"),
            (f"{self.root}/detokenize", {"tokens": tokens, "model": self.model_name}, "prompt"),
            (f"{self.root}/extras/detokenize", {"tokens": tokens, "model": self.model_name}, "text"),
            (f"{self.root}/api/extra/detokenize", {"ids": tokens}, "result"),
        ]
        for route, body, key in candidates:
            if self._detokenize_route not in (None, (route, key)):
                continue
            try:
                resp = self._http.post(route, json=body, timeout=30)
                text = resp.json().get(key) if resp.status_code == 200 else None
            except (httpx.HTTPError, ValueError, AttributeError):
                text = None
            if isinstance(text, str):
                self._detokenize_route = (route, key)
                return text
        raise InvalidRequest(f"The remote server ({self.kind}) offers no detokenizer endpoint.", param="ids")

    def render_chat(
        self, messages: Sequence[ChatMessage], add_generation_prompt: bool = True, *, reshape: bool = True
    ) -> str:
        """An approximation (the server applies its own template); good enough for counting."""
        parts = [f"<|{m.role}|>\n{m.content}\n" for m in messages]
        return "".join(parts) + ("<|assistant|>\n" if add_generation_prompt else "")

    def generate(self, request: GenerationRequest) -> GenerationStream:
        if request.messages is None and request.prompt is None:
            raise InvalidRequest("Send either 'prompt' or 'messages'.", param="prompt")
        stream = GenerationStream(request)
        with self._lock:
            self._jobs.append(stream)
        threading.Thread(target=self._run, args=(stream,), daemon=True, name="kataribe-remote").start()
        return stream

    def find_job(self, label: str | None) -> GenerationStream | None:
        with self._lock:
            for job in self._jobs:
                if label is None or job.request.label == label:
                    return job
        return None

    def queue_depth(self) -> int:
        with self._lock:
            return len(self._jobs)

    def close(self) -> None:
        with self._lock:
            jobs = list(self._jobs)
        for job in jobs:
            job.cancel()
        self._http.close()

    # -- request building --
    def payload(self, request: GenerationRequest) -> tuple[str, dict[str, Any]]:
        """The route and JSON body for this request, with sampler names this server understands."""
        return build_payload(request, kind=self.kind, model_name=self.model_name, api_base=self.api_base)

    # -- worker --
    def _run(self, stream: GenerationStream) -> None:
        request = stream.request
        stream.started.set()
        try:
            self._stream_remote(stream)
        except KataribeError as exc:
            stream.emit(GenerationDone("error", Usage(), Timings(), stream.text_so_far, error=exc))
        except (httpx.HTTPError, ValueError) as exc:
            if stream.cancelled.is_set():
                stream.emit(GenerationDone("cancelled", Usage(), Timings(), stream.text_so_far))
            else:
                err = BackendError(f"The remote server failed: {exc}")
                stream.emit(GenerationDone("error", Usage(), Timings(), stream.text_so_far, error=err))
        finally:
            with self._lock:
                if stream in self._jobs:
                    self._jobs.remove(stream)
            del request

    def _stream_remote(self, stream: GenerationStream) -> None:
        request = stream.request
        route, body = self.payload(request)
        is_chat = request.messages is not None
        stops = StopStringFilter(request.stop)
        tail_hold = ReplacementTailHold()
        t0 = time.perf_counter()
        t_first: float | None = None
        finish: FinishReason = "length"
        stop_hit: str | None = None
        usage_data: dict[str, Any] = {}
        timings_data: dict[str, Any] = {}
        text_parts: list[str] = []
        n_chunks = 0
        finished = False
        with self._http.stream("POST", route, json=body) as resp:
            unregister = stream.on_cancel(resp.close)
            try:
                if resp.status_code >= 400:
                    resp.read()
                    raise _backend_error(resp)
                for data in _sse_payloads(resp.iter_lines()):
                    if stream.cancelled.is_set():
                        finish = "cancelled"
                        break
                    if "error" in data:
                        raise BackendError(f"The remote server reported: {_message_of(data)}")
                    usage_data = data.get("usage") or usage_data
                    timings_data = data.get("timings") or timings_data
                    for choice in data.get("choices") or []:
                        piece = (choice.get("delta") or {}).get("content") if is_chat else choice.get("text")
                        lps = _parse_logprobs(choice.get("logprobs"), is_chat)
                        if piece or lps:
                            t_first = t_first or time.perf_counter()
                            n_chunks += 1
                            scan = stops.feed(tail_hold.feed(piece or ""))
                            if scan.text or lps:
                                text_parts.append(scan.text)
                                stream.emit(TextDelta(scan.text, lps))
                            if scan.stopped:
                                finish, stop_hit = "stop", scan.stop
                                break
                        if choice.get("finish_reason"):
                            finished = True
                            finish = "stop" if choice["finish_reason"] == "stop" else "length"
                    if stop_hit:
                        break
            finally:
                unregister()
        if stream.cancelled.is_set():
            finish = "cancelled"
        elif not finished and not n_chunks:
            raise BackendError(
                "The remote server ended the stream without an answer; it may have failed "
                "(a prompt longer than its context, say). Check the server's log."
            )
        tail = ""
        if stop_hit is None:  # a reply cut short ends without the half character sent as U+FFFD
            scan = stops.feed(tail_hold.finish(cut=finish in ("length", "cancelled")))
            tail = scan.text if scan.stopped else scan.text + stops.flush()
            if scan.stopped:
                finish, stop_hit = "stop", scan.stop
        if tail:
            text_parts.append(tail)
            stream.emit(TextDelta(tail))
        t_end = time.perf_counter()
        text = "".join(text_parts)
        stream.emit(
            GenerationDone(
                finish,
                *self._usage_and_timings(
                    usage_data,
                    timings_data,
                    request,
                    text,
                    n_chunks,
                    t0,
                    t_first or t_end,
                    t_end,
                ),
                text,
                stop=stop_hit,
            )
        )

    def _usage_and_timings(
        self,
        usage: dict[str, Any],
        timings: dict[str, Any],
        request: GenerationRequest,
        text: str,
        n_chunks: int,
        t0: float,
        t_first: float,
        t_end: float,
    ) -> tuple[Usage, Timings]:
        estimated = not usage
        if usage:
            prompt = int(usage.get("prompt_tokens", 0))
            completion = int(usage.get("completion_tokens", 0))
            cached = int((usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0)
        else:
            # The server reported no usage (llama-cpp-python's server does not, when streaming):
            # count with its tokenizer where it has one. A chat prompt's count stays an estimate,
            # since the server's chat template is not known here.
            is_chat = request.prompt is None
            prompt_text = self.render_chat(request.messages or []) if is_chat else str(request.prompt)
            counted_prompt = self.count_tokens(prompt_text)
            counted_text = self.count_tokens(text) if text else TokenCount(0, [])
            prompt, completion, cached = counted_prompt.count, counted_text.count or n_chunks, 0
            estimated = is_chat or counted_prompt.estimated or counted_text.estimated
        if "cache_n" in timings:
            cached = int(timings["cache_n"])
        t = Timings(
            prompt_n=int(timings.get("prompt_n", max(0, prompt - cached))),
            cache_n=cached,
            prompt_ms=float(timings.get("prompt_ms", (t_first - t0) * 1000)),
            predicted_n=int(timings.get("predicted_n", completion)),
            predicted_ms=float(timings.get("predicted_ms", (t_end - t_first) * 1000)),
            estimated=estimated,
        )
        return Usage(prompt, completion, cached, estimated=estimated), t


def _sse_payloads(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    for line in lines:
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            return
        if data:
            yield json.loads(data)


def _message_of(data: dict[str, Any]) -> str:
    err = data.get("error")
    if isinstance(err, dict):
        return str(err.get("message") or err)
    return str(err or data.get("detail") or data)


def _backend_error(resp: httpx.Response) -> KataribeError:
    try:
        message = _message_of(resp.json())
    except ValueError:
        message = resp.text[:500]
    if 400 <= resp.status_code < 500 and resp.status_code not in (401, 403):
        return InvalidRequest(f"The remote server rejected the request: {message}")
    return BackendError(f"The remote server answered HTTP {resp.status_code}: {message}")


def _parse_logprobs(raw: Any, is_chat: bool) -> list[TokenLogprob]:
    if not raw:
        return []
    out: list[TokenLogprob] = []
    if is_chat:
        for e in raw.get("content") or []:
            top = [
                (t["token"], float(t["logprob"]), list(t.get("bytes") or []))
                for t in e.get("top_logprobs") or []
            ]
            out.append(TokenLogprob(e["token"], float(e["logprob"]), list(e.get("bytes") or []), top))
        return out
    tops = raw.get("top_logprobs") or []
    for i, (tok, lp) in enumerate(
        zip(raw.get("tokens") or [], raw.get("token_logprobs") or [], strict=False)
    ):
        alts = tops[i] if i < len(tops) and isinstance(tops[i], dict) else {}
        out.append(
            TokenLogprob(
                tok,
                float(lp or 0.0),
                list(tok.encode()),
                [(t, float(v), list(t.encode())) for t, v in alts.items()],
            )
        )
    return out
