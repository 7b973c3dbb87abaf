"""Ollama's wire format: /api/generate, /api/chat and /api/show bodies, and the ``options`` samplers."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Lenient(BaseModel):
    # Clients send fields for other Ollama versions and hardware options (num_gpu, use_mmap, ...)
    model_config = ConfigDict(extra="ignore")


class Options(_Lenient):
    """The sampler options by Ollama's names; unset ones take Ollama's defaults."""

    num_predict: int | None = Field(default=None, description="-1 = no limit, -2 = fill the context")
    num_ctx: int | None = Field(default=None, ge=1, description="at most the loaded context")
    temperature: float | None = None
    top_k: int | None = Field(default=None, description="0 or less = off")
    top_p: float | None = None
    min_p: float | None = None
    typical_p: float | None = None
    repeat_penalty: float | None = None
    repeat_last_n: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    seed: int | None = Field(default=None, description="-1 = random")
    stop: list[str] | str | None = None
    mirostat: int | None = None
    mirostat_tau: float | None = None
    mirostat_eta: float | None = None


class GenerationFields(_Lenient):
    model: str = Field(default="", description="the loaded model's name (or nothing)")
    stream: bool = Field(default=True, description="Ollama streams unless told not to")
    format: str | dict[str, Any] | None = Field(default=None, description='"json" or a JSON schema')
    options_: Options | None = Field(default=None, alias="options")
    keep_alive: str | float | None = Field(default=None, description="accepted; the model stays loaded")
    think: bool | str | None = None

    @property
    def options(self) -> Options:
        return self.options_ or Options()


class GenerateBody(GenerationFields):
    prompt: str = ""
    system: str | None = None
    template: str | None = None
    raw: bool = False
    suffix: str | None = None
    images: list[str] | None = None
    context: list[int] | None = None


class ChatMessageIn(_Lenient):
    role: str
    content: str | None = ""
    images: list[str] | None = None
    tool_calls: list[Any] | None = None


class ChatBody(GenerationFields):
    messages: list[ChatMessageIn] = Field(default_factory=list)
    tools: list[Any] | None = None


class ShowBody(_Lenient):
    model: str | None = None
    name: str | None = Field(default=None, description="older clients' name for model")
    verbose: bool = False
