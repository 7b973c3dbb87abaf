"""Typed domain errors; the HTTP layer maps them to status codes in one place."""

from __future__ import annotations


class KataribeError(Exception):
    """Base class. ``message`` says what was wrong and what to do about it."""

    status_code = 500
    error_type = "server_error"

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code


class InvalidRequest(KataribeError):
    status_code = 400
    error_type = "invalid_request_error"


class ContextOverflow(InvalidRequest):
    def __init__(self, prompt_tokens: int, n_ctx: int, *, reserve: int = 0, param: str = "messages") -> None:
        hint = f" plus {reserve} reserved for the reply" if reserve else ""
        super().__init__(
            f"The prompt is {prompt_tokens} tokens{hint}, but the context holds {n_ctx}. "
            "Shorten the prompt, lower max_tokens, or start the server with a larger --ctx-size.",
            param=param,
            code="context_length_exceeded",
        )
        self.prompt_tokens = prompt_tokens
        self.n_ctx = n_ctx


class PromptTooLong(ContextOverflow):
    """Refused before tokenizing: the prompt's size in bytes alone shows it cannot fit."""

    def __init__(self, size_bytes: int, fewest_tokens: int, n_ctx: int, *, reserve: int = 0) -> None:
        super().__init__(fewest_tokens, n_ctx, reserve=reserve)
        hint = f" plus {reserve} reserved for the reply" if reserve else ""
        self.message = (
            f"The prompt is {size_bytes:,} bytes, so at least {fewest_tokens:,} tokens{hint}, but the "
            f"context holds {n_ctx}. Shorten the prompt or start the server with a larger --ctx-size."
        )
        self.args = (self.message,)


class ModelNotFound(KataribeError):
    status_code = 404
    error_type = "invalid_request_error"

    def __init__(self, requested: str, available: list[str]) -> None:
        super().__init__(
            f"The model '{requested}' is not loaded. Available: {', '.join(available) or 'none'}. "
            "Use one of those names, or omit 'model'.",
            param="model",
            code="model_not_found",
        )


class Unauthorized(KataribeError):
    status_code = 401
    error_type = "authentication_error"


class TooManyAttempts(KataribeError):
    """Too many wrong keys from one address in a short time."""

    status_code = 429
    error_type = "rate_limit_error"


class ModelLoadError(KataribeError):
    status_code = 500
    error_type = "server_error"


class BackendError(KataribeError):
    """The remote backend failed or answered something unusable."""

    status_code = 502
    error_type = "server_error"


class ConfigError(KataribeError):
    """A setting is wrong; raised at start-up."""

    status_code = 500
    error_type = "server_error"


class NotSupported(KataribeError):
    """A call of a compatible API that Kataribe does not offer (Ollama's model management, say)."""

    status_code = 501
    error_type = "not_implemented_error"
