"""The KoboldCpp wire format (KoboldAI United API v1 plus KoboldCpp's /api/extra routes)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from kataribe.api.sampler_fields import capped_stops

DEFAULT_MAX_LENGTH = 200


class KoboldGenerateRequest(BaseModel):
    # SillyTavern and KoboldAI Lite send many fields (use_story, sampler_order, tfs, top_a, ...)
    # that have no llama.cpp sampler here; they are accepted and ignored.
    model_config = ConfigDict(extra="ignore")

    prompt: str = ""
    memory: str = Field(default="", description="Text placed before the prompt")
    max_context_length: int | None = Field(default=None, ge=1)
    max_length: int = Field(default=DEFAULT_MAX_LENGTH, ge=1)
    temperature: float = Field(default=0.75, ge=0, le=5)
    top_k: int = Field(default=100, description="0 or below = off")
    top_p: float = Field(default=0.92, ge=0, le=1)
    min_p: float = Field(default=0.0, ge=0, le=1)
    typical: float = Field(default=1.0, gt=0, le=1)
    rep_pen: float = Field(default=1.0, gt=0, le=10)
    rep_pen_range: int = Field(default=320, ge=-1)
    presence_penalty: float = Field(default=0.0, ge=-2, le=2)
    sampler_seed: int = -1
    stop_sequence: list[str] = Field(default_factory=list, description="Extras past 64 are dropped")
    trim_stop: bool = True
    ban_eos_token: bool | None = Field(default=None, description="Never end on the end token")
    use_default_badwordsids: bool = Field(
        default=False, description="Ban the end token(s) unless ban_eos_token says otherwise (KoboldCpp)"
    )
    replace_instruct_placeholders: bool = Field(
        default=True,  # KoboldCpp's default too
        description="Replace {{[INPUT]}}, {{[OUTPUT]}}, {{[SYSTEM]}} (and _END forms) with chat tags",
    )
    grammar: str = ""
    genkey: str = ""
    logit_bias: dict[str, float] = Field(default_factory=dict)
    # KoboldCpp's names and defaults for its extra samplers
    dynatemp_range: float = 0.0
    dynatemp_exponent: float = 1.0
    nsigma: float = Field(default=0.0, description="top-n-sigma; 0 = off")
    xtc_threshold: float = 0.2
    xtc_probability: float = 0.0
    dry_multiplier: float = 0.0
    dry_base: float = 1.75
    dry_allowed_length: int = 2
    dry_penalty_last_n: int = 320
    dry_sequence_breakers: list[str] | str | None = None
    mirostat: int = 0
    mirostat_tau: float = 5.0
    mirostat_eta: float = 0.1
    banned_tokens: list[str] | None = Field(default=None, description="Phrases never to produce")
    banned_strings: list[str] | None = Field(default=None, description="SillyTavern's name for banned_tokens")

    @field_validator("stop_sequence")
    @classmethod
    def _limit_stops(cls, value: list[str]) -> list[str]:
        return capped_stops(value, "stop_sequence")


class GenKeyRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    genkey: str = ""


class DetokenizeRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    ids: list[int] = Field(max_length=65_536)


class TokenCountRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    prompt: str
    special: bool = True
