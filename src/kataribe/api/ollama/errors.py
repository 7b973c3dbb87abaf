"""Errors on Ollama's routes in Ollama's shape, ``{"error": "..."}``, which Ollama clients read."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from kataribe.api.errors import describe_validation
from kataribe.errors import KataribeError


def ollama_error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status)


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
