"""The JSON a remote OpenAI-compatible server gets for a generation, with each server's own names
for samplers (vLLM, llama-server, llama-cpp-python's server, KoboldCpp, or any other)."""

from __future__ import annotations

from typing import Any

from kataribe.engine.base import GenerationRequest, SamplingParams
from kataribe.errors import InvalidRequest


def build_payload(
    request: GenerationRequest, *, kind: str, model_name: str, api_base: str
) -> tuple[str, dict[str, Any]]:
    """The route and JSON body for this request, with sampler names this server understands."""
    s = request.sampling
    body: dict[str, Any] = {
        "model": model_name,
        "stream": True,
        "stream_options": {"include_usage": True},
        "temperature": s.temperature,
        "top_p": s.top_p,
        "presence_penalty": s.presence_penalty,
        "frequency_penalty": s.frequency_penalty,
    }
    if request.max_tokens is not None:
        body["max_tokens"] = request.max_tokens
    if s.seed is not None:
        body["seed"] = s.seed
    if request.stop:
        body["stop"] = request.stop
    if s.logit_bias:
        body["logit_bias"] = {str(k): max(-100.0, v) for k, v in s.logit_bias.items()}
    # Non-OpenAI samplers: top_k / min_p are accepted as top-level extras by llama.cpp and vLLM.
    body["top_k"] = s.top_k if s.top_k > 0 else top_k_off(kind)
    body["min_p"] = s.min_p
    if kind == "vllm":
        body["repetition_penalty"] = s.repeat_penalty
    elif kind in ("llama-server", "llama-cpp-python", "koboldcpp"):
        body["repeat_penalty"] = s.repeat_penalty
        body["repeat_last_n"] = s.repeat_last_n
        body["typical_p"] = s.typical_p
    else:  # unknown OpenAI-compatible server: send both spellings; servers ignore the other
        body["repeat_penalty"] = s.repeat_penalty
        body["repetition_penalty"] = s.repeat_penalty
    body.update(extra_samplers(s, kind))
    if request.ban_eos:
        body["ignore_eos"] = True
    if request.grammar:
        if kind == "vllm":
            body["structured_outputs"] = {"grammar": request.grammar}
        else:
            body["grammar"] = request.grammar
    if request.json_schema is not None:
        body["response_format"] = (
            {"type": "json_schema", "json_schema": {"name": "output", "schema": request.json_schema}}
            if request.json_schema
            else {"type": "json_object"}
        )
    if request.messages is not None:
        body["messages"] = [
            {"role": m.role, "content": m.content} | ({"name": m.name} if m.name else {})
            for m in request.messages
        ]
        if request.logprobs is not None:
            body["logprobs"] = True
            body["top_logprobs"] = request.logprobs
        if request.continue_last:
            # vLLM needs these; llama-server continues a trailing assistant message by itself
            body["continue_final_message"] = True
            body["add_generation_prompt"] = False
        return f"{api_base}/chat/completions", body
    body["prompt"] = request.prompt
    if request.logprobs is not None:
        body["logprobs"] = request.logprobs
    return f"{api_base}/completions", body


def extra_samplers(s: SamplingParams, kind: str) -> dict[str, Any]:
    """DRY, XTC, top-n-sigma, dynamic temperature and Mirostat under the names this server reads.

    Only samplers that are switched on are sent. A server that has no such sampler gets a clear 400
    instead of a reply that silently ignored the setting.
    """
    wanted: dict[str, dict[str, Any]] = {}
    if s.dry_multiplier > 0 and s.dry_penalty_last_n != 0:
        wanted["DRY"] = {
            "dry_multiplier": s.dry_multiplier,
            "dry_base": s.dry_base,
            "dry_allowed_length": s.dry_allowed_length,
            "dry_penalty_last_n": s.dry_penalty_last_n,
            "dry_sequence_breakers": list(s.dry_sequence_breakers),
        }
    if s.xtc_probability > 0:
        wanted["XTC"] = {"xtc_probability": s.xtc_probability, "xtc_threshold": s.xtc_threshold}
    if s.top_n_sigma > 0:
        wanted["top-n-sigma"] = {"nsigma" if kind == "koboldcpp" else "top_n_sigma": s.top_n_sigma}
    if s.dynatemp_range > 0:
        wanted["dynamic temperature"] = {
            "dynatemp_range": s.dynatemp_range,
            "dynatemp_exponent": s.dynatemp_exponent,
        }
    if s.mirostat:
        mode = "mirostat_mode" if kind == "llama-cpp-python" else "mirostat"
        wanted["Mirostat"] = {
            mode: s.mirostat,
            "mirostat_tau": s.mirostat_tau,
            "mirostat_eta": s.mirostat_eta,
        }
    if any(s.banned_strings):
        wanted["banned strings"] = {"banned_tokens": [b for b in s.banned_strings if b]}
    unsupported = {
        "vllm": set(wanted),
        "llama-cpp-python": set(wanted) - {"Mirostat"},
        "llama-server": set(wanted) & {"banned strings"},
    }.get(kind, set())
    if unsupported:
        names = ", ".join(sorted(unsupported))
        raise InvalidRequest(
            f"The remote server ({kind}) has no {names} sampler; turn it off in the sampler settings "
            "or use a backend that has it (the embedded engine and KoboldCpp have them all).",
            param="sampling",
        )
    return {key: value for fields in wanted.values() for key, value in fields.items()}


def top_k_off(kind: str) -> int:
    """top_k's "off" in this server's terms: llama.cpp's servers and KoboldCpp read 0 (llama-cpp-python's
    refuses -1); vLLM and the servers built like it (Aphrodite, SGLang) want -1 (older ones refuse 0)."""
    return 0 if kind in ("llama-server", "llama-cpp-python", "koboldcpp") else -1
