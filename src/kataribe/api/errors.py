"""One place that turns errors into HTTP answers: OpenAI-style JSON, plus KoboldCpp's ``detail``."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response

from kataribe.api.streaming import ClientGone
from kataribe.errors import KataribeError

log = logging.getLogger(__name__)


def error_body(
    message: str, *, type_: str, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    return {
        "error": {"message": message, "type": type_, "param": param, "code": code},
        # KoboldCpp clients (SillyTavern, KoboldAI Lite) read detail.msg
        "detail": {"msg": message, "type": type_},
    }


def error_response(
    status: int,
    message: str,
    *,
    type_: str,
    param: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(error_body(message, type_=type_, param=param, code=code), status, headers=headers)


def _describe_validation(exc: RequestValidationError) -> tuple[str, str | None]:
    parts: list[str] = []
    first_param: str | None = None
    for err in exc.errors()[:5]:
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path")]
        where = ".".join(loc) or "request body"
        first_param = first_param or (loc[0] if loc else None)
        msg = str(err.get("msg", "is invalid"))
        if err.get("type") == "json_invalid":
            return "The request body is not valid JSON. Send a JSON object.", None
        parts.append(f"'{where}': {msg}")
    return "Invalid request: " + "; ".join(parts) + ".", first_param


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(KataribeError)
    async def _domain(_request: Request, exc: KataribeError) -> JSONResponse:
        return error_response(
            exc.status_code, exc.message, type_=exc.error_type, param=exc.param, code=exc.code
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        message, param = _describe_validation(exc)
        return error_response(400, message, type_="invalid_request_error", param=param)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        messages = {404: "No such route. See /docs for the API.", 405: "Method not allowed on this route."}
        message = (
            exc.detail
            if isinstance(exc.detail, str) and exc.status_code not in messages
            else (messages.get(exc.status_code, str(exc.detail)))
        )
        return error_response(exc.status_code, message, type_="invalid_request_error")

    @app.exception_handler(ClientGone)
    async def _gone(_request: Request, _exc: ClientGone) -> Response:
        return Response(status_code=499)  # nginx's "client closed request"; nobody reads it

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return error_response(
            500, f"Internal error: {type(exc).__name__}. See the server log.", type_="server_error"
        )


def describe_validation(exc: RequestValidationError) -> tuple[str, str | None]:
    """A validation error's message and first parameter, for surfaces with an error shape of their own."""
    return _describe_validation(exc)
