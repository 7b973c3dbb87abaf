"""llama-server's wire format (/completion, /tokenize, /detokenize) and the tokenizer bodies of
vLLM, Aphrodite and text-generation-webui that share its routes."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

MAX_TOKEN_IDS = 65_536


class _Lenient(BaseModel):
    # SillyTavern sends the fields of every backend it knows (tfs_z, typical, sampler_priority, ...)
    model_config = ConfigDict(extra="ignore")


class CompletionBody(_Lenient):
    """POST /completion. Sampler fields keep llama-server's names; unset ones take its defaults."""

    prompt: str | list[Any] = Field(
        default="", description="A string, token ids, or ids and strings mixed (one prompt per request)"
    )
    n_predict: int | None = Field(default=None, ge=-1, description="-1 = until the end or the context")
    max_tokens: int | None = Field(default=None, ge=-1, description="another name for n_predict")
    stream: bool = False
    cache_prompt: bool = Field(default=True, description="accepted; the prompt cache is always on")
    samplers: list[str] | str | None = Field(
        default=None, description="which samplers run; the embedded chain keeps llama.cpp's order"
    )
    stop: list[str] | str | None = None
    seed: int | None = Field(default=None, description="-1 (or 4294967295) = random")
    temperature: float | None = None
    dynatemp_range: float | None = None
    dynatemp_exponent: float | None = None
    top_k: int | None = Field(default=None, description="0 or less = off")
    top_p: float | None = None
    min_p: float | None = None
    typical_p: float | None = None
    top_n_sigma: float | None = None
    xtc_probability: float | None = None
    xtc_threshold: float | None = None
    repeat_penalty: float | None = None
    repeat_last_n: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    dry_multiplier: float | None = None
    dry_base: float | None = None
    dry_allowed_length: int | None = None
    dry_penalty_last_n: int | None = None
    dry_sequence_breakers: list[str] | str | None = Field(
        default=None, description="a list, or a JSON-encoded list as SillyTavern sends it"
    )
    mirostat: int | None = None
    mirostat_tau: float | None = None
    mirostat_eta: float | None = None
    logit_bias: list[list[Any]] | dict[str, float | bool] | None = Field(
        default=None,
        description='[[token id or text, bias or false], ...] or {"id or text": bias}; false = never',
    )
    n_probs: int = Field(default=0, ge=0, le=20, description="top alternatives per token (0 = none)")
    grammar: str | None = None
    json_schema: dict[str, Any] | None = None
    ignore_eos: bool = False
    banned_strings: list[str] | None = Field(default=None, description="phrases never to produce")


class TokenizeBody(_Lenient):
    """POST /tokenize: llama-server's ``content`` or vLLM's ``prompt`` / ``messages``."""

    content: str | None = Field(default=None, description="llama-server: the text")
    add_special: bool = False
    parse_special: bool = True
    with_pieces: bool = False
    model: str | None = Field(default=None, description="vLLM: the model name")
    prompt: str | None = Field(default=None, description="vLLM: the text")
    messages: list[dict[str, Any]] | None = Field(default=None, description="vLLM: a chat to render first")
    add_special_tokens: bool | None = None
    add_generation_prompt: bool = True


class DetokenizeBody(_Lenient):
    tokens: list[int] = Field(max_length=MAX_TOKEN_IDS)
    model: str | None = None


class VllmTokenizeBody(_Lenient):
    """POST /v1/tokenize (Aphrodite and vLLM)."""

    model: str | None = None
    prompt: str
    add_special_tokens: bool | None = None


class EncodeBody(_Lenient):
    """text-generation-webui's POST /v1/internal/encode and /v1/internal/token-count."""

    text: str


class DecodeBody(_Lenient):
    tokens: list[int] = Field(max_length=MAX_TOKEN_IDS)
