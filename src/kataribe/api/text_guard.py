"""Refuses a JSON body holding a lone surrogate (``"\\ud800"``) on any route, with a 400 naming the field."""

from __future__ import annotations

import json
import re

from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kataribe.api.ollama.errors import edge_error_body
from kataribe.store.fields import lone_surrogate_path

# A \u escape of a surrogate, high (D800-DBFF) or low (DC00-DFFF); a valid pair matches too, and so
# does an escaped backslash before "ud800" text: both are told apart by parsing (the slow path).
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_JSON_TYPES = re.compile(rb"application/(?:[\w.+-]*\+)?json\b", re.IGNORECASE)
_PARSE_IN_THREAD_BYTES = 256 * 1024


class RefuseLoneSurrogates:
    """Reads a JSON body (the parser FastAPI uses would keep ``\\ud800`` as a lone surrogate, which
    no database, log or JSON encoder downstream can carry) and answers 400 before any route sees it.

    Bodies FastAPI parses as JSON are checked: a JSON content type, or none at all. Others (multipart
    uploads, whose files are checked by their importers) pass untouched.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") not in ("POST", "PUT", "PATCH", "DELETE"):
            await self.app(scope, receive, send)
            return
        ctype = next((v for k, v in scope.get("headers", []) if k.lower() == b"content-type"), None)
        if ctype is not None and not _JSON_TYPES.match(ctype.strip()):
            await self.app(scope, receive, send)
            return
        chunks: list[Message] = []
        while True:
            message = await receive()
            chunks.append(message)
            if message["type"] != "http.request" or not message.get("more_body", False):
                break
        body = b"".join(m.get("body", b"") for m in chunks if m["type"] == "http.request")
        if _SURROGATE_ESCAPE.search(body):
            where = (
                await run_in_threadpool(_surrogate_field, body)
                if len(body) > _PARSE_IN_THREAD_BYTES
                else _surrogate_field(body)
            )
            if where is not None:
                refusal = (
                    f"'{where}' contains an unpaired surrogate (broken UTF-16 text such as \\ud800); "
                    "send valid Unicode text."
                )
                error = edge_error_body(
                    str(scope.get("path", "")),
                    refusal,
                    type_="invalid_request_error",
                    param=where,
                    code="invalid_text",
                )
                response = JSONResponse(error, 400)
                await response(scope, receive, send)
                return

        replay = iter(chunks)

        async def replayed() -> Message:
            # The body as it came, then whatever the client sends next (a disconnect).
            return next(replay, None) or await receive()

        await self.app(scope, replayed, send)


def _surrogate_field(body: bytes) -> str | None:
    """The path of the first string (or key) with a lone surrogate; None when there is none, or
    when the body is not JSON at all (the route then answers as it would)."""
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError):
        return None
    return lone_surrogate_path(parsed, "") or None
