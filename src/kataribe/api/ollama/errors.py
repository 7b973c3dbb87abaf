"""Errors on Ollama's routes in Ollama's shape, ``{"error": "..."}``, which Ollama clients read."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from kataribe.api.errors import describe_validation, error_body
from kataribe.errors import KataribeError

OLLAMA_PATHS = frozenset(
    f"/api/{call}"
    for call in (
        "tags", "show", "generate", "chat", "version", "ps",
        "pull", "push", "create", "delete", "copy", "embed", "embeddings",
    )
)  # fmt: skip
"""Ollama's routes (and ``/api/blobs/...``), whose errors Ollama clients read as ``{"error": "..."}``."""


def is_ollama_path(path: str) -> bool:
    return path.rstrip("/") in OLLAMA_PATHS or path.startswith("/api/blobs/")


def ollama_error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status)


def edge_error_body(
    path: str, message: str, *, type_: str, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    """The body of an error answered before routing (by middleware): Ollama's shape on Ollama's
    routes, where the official client would otherwise show a dict for the message."""
    if is_ollama_path(path):
        return {"error": message}
    return error_body(message, type_=type_, param=param, code=code)


class OllamaRoute(APIRoute):
    """An APIRoute whose bad requests and typed errors answer in Ollama's shape."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                return ollama_error(400, describe_validation(exc)[0])
            except KataribeError as exc:
                return ollama_error(exc.status_code, exc.message)

        return route
