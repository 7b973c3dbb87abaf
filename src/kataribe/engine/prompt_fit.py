"""Fitting a tokenized prompt and its reply into the context: cut from the start when the client
asked for it (KoboldCpp, SillyTavern's truncation_length), otherwise a 400 naming what is too long."""

from __future__ import annotations

from dataclasses import dataclass

from kataribe.engine.base import GenerationRequest
from kataribe.errors import ContextOverflow, InvalidRequest


@dataclass(frozen=True)
class FittedPrompt:
    tokens: list[int]
    max_tokens: int
    """How many tokens the reply may have (the request's max_tokens, or what room is left)."""


def fit_prompt(tokens: list[int], request: GenerationRequest, n_ctx: int, *, head: int = 0) -> FittedPrompt:
    """The prompt (its oldest tokens dropped if the request allows it) and the reply's length, so
    that prompt + reply fit in the context and in the client's own limit (``max_context``).

    ``head`` tokens at the start (a BOS) are always kept. Cutting keeps at least half of the
    limit for the prompt, as KoboldCpp does, so a huge max_tokens cannot leave no prompt at all.
    """
    if request.max_tokens is not None and request.max_tokens < 1:
        raise InvalidRequest("max_tokens must be at least 1.", param="max_tokens")
    reserve = request.max_tokens or 1
    limit = min(n_ctx, request.max_context or n_ctx) if request.truncate_prompt else n_ctx
    if request.reply_fills_context and len(tokens) < limit:
        reserve = min(reserve, limit - len(tokens))  # the reply stops at the context's end
    if len(tokens) + reserve > limit:
        if not request.truncate_prompt:
            too_long = "prompt" if request.prompt is not None else "messages"
            param = too_long if len(tokens) >= n_ctx else "max_tokens"
            raise ContextOverflow(len(tokens), n_ctx, reserve=request.max_tokens or 0, param=param)
        keep = max(1, limit - min(reserve, limit // 2))
        head = min(head, len(tokens), keep - 1)
        tokens = tokens[:head] + tokens[len(tokens) - (keep - head) :]
    room = limit - len(tokens)
    return FittedPrompt(tokens, max(1, min(request.max_tokens or room, room)))
