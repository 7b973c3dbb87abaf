"""The OpenAI wire format: request models (with llama.cpp/vLLM sampler extras) for chat and completions."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from kataribe.api.sampler_fields import capped_stops


class _Lenient(BaseModel):
    # Clients send many fields we do not use (user, service_tier, ...); ignore them.
    model_config = ConfigDict(extra="ignore")


class TextPart(_Lenient):
    type: str
    text: str | None = None


class ChatMessageIn(_Lenient):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None
    name: str | None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        unsupported = {p.type for p in self.content if p.type != "text"}
        if unsupported:
            from kataribe.errors import InvalidRequest

            raise InvalidRequest(
                f"Message parts of type {sorted(unsupported)} are not supported; send text parts only.",
                param="messages",
            )
        return "".join(p.text or "" for p in self.content)


class StreamOptions(_Lenient):
    include_usage: bool = False


class JsonSchemaSpec(_Lenient):
    name: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None


class ResponseFormat(_Lenient):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaSpec | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")  # llama-server's shorthand


class SamplingFields(_Lenient):
    """Sampler fields shared by both endpoints. Non-OpenAI ones follow llama-server and vLLM."""

    model: str | None = None
    temperature: float | None = Field(default=None, ge=0, le=5)
    top_p: float | None = Field(default=None, ge=0, le=1)
    top_k: int | None = Field(default=None, description="llama.cpp/vLLM extra; 0 or below (vLLM: -1) = off")
    min_p: float | None = Field(default=None, ge=0, le=1, description="llama.cpp/vLLM extra")
    typical_p: float | None = Field(default=None, gt=0, le=1, description="llama.cpp extra")
    repeat_penalty: float | None = Field(default=None, gt=0, le=10, description="llama.cpp name")
    repetition_penalty: float | None = Field(default=None, gt=0, le=10, description="vLLM name")
    repeat_last_n: int | None = Field(default=None, ge=-1)
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    seed: int | None = None
    stop: str | list[str] | None = None
    n: int = Field(default=1, ge=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    logit_bias: dict[str, float] | None = None
    grammar: str | None = Field(default=None, description="GBNF grammar (llama.cpp extra)")
    ignore_eos: bool = Field(default=False, description="llama.cpp/vLLM extra: never stop on EOS")
    response_format: ResponseFormat | None = None
    # llama-server's extra samplers, by its names (off unless set)
    dynatemp_range: float | None = Field(
        default=None, description="llama.cpp extra: dynamic temperature ±range"
    )
    dynatemp_exponent: float | None = None
    top_n_sigma: float | None = Field(default=None, description="llama.cpp extra; -1 = off")
    xtc_probability: float | None = Field(default=None, description="llama.cpp extra: XTC; 0 = off")
    xtc_threshold: float | None = None
    dry_multiplier: float | None = Field(default=None, description="llama.cpp extra: DRY; 0 = off")
    dry_base: float | None = None
    dry_allowed_length: int | None = None
    dry_penalty_last_n: int | None = None
    dry_sequence_breakers: list[str] | str | None = Field(
        default=None, description="A list, or a JSON-encoded list as SillyTavern sends it"
    )
    mirostat: int | None = Field(default=None, description="llama.cpp extra: 0 = off, 1 or 2")
    mirostat_tau: float | None = None
    mirostat_eta: float | None = None
    banned_strings: list[str] | None = Field(
        default=None, description="Phrases never to produce (KoboldCpp/SillyTavern extra); banned_tokens too"
    )
    banned_tokens: list[str] | None = None

    @field_validator("stop")
    @classmethod
    def _limit_stops(cls, value: str | list[str] | None) -> str | list[str] | None:
        return capped_stops(value, "stop") if isinstance(value, list) else value


class ChatCompletionRequest(SamplingFields):
    messages: list[ChatMessageIn] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    logprobs: bool = False
    top_logprobs: int | None = Field(default=None, ge=0, le=20)


class CompletionRequest(SamplingFields):
    prompt: str | list[str]
    max_tokens: int | None = Field(default=16, ge=1)
    logprobs: int | None = Field(default=None, ge=0, le=20)
    n_probs: int | None = Field(default=None, ge=0, le=20, description="llama.cpp name for logprobs")
    echo: bool = False
    suffix: str | None = None
    truncation_length: int | None = Field(
        default=None,
        ge=1,
        description="SillyTavern's context size: a longer prompt loses its oldest tokens (KoboldCpp-style)",
    )
