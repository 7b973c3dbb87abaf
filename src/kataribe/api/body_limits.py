"""Request bodies over their route's limit get a 413 before they are read (by ``Content-Length``)
or as soon as the bytes counted while they stream in pass it (chunked bodies).

Without this a 100 MB JSON prompt was read, parsed and tokenized whole: 280 s with the server
frozen, at 10.9 GB of memory. JSON bodies may be up to 16 MiB; file uploads (multipart) up to
``MAX_UPLOAD_BYTES`` plus the form's own bytes; a backup restore up to ``MAX_RESTORE_BYTES``.
"""

from __future__ import annotations

import json
import re

import anyio
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kataribe.api.ollama.errors import edge_error_body
from kataribe.api.roleplay.services import MAX_UPLOAD_BYTES

MiB = 1024 * 1024
MAX_JSON_BYTES = 16 * MiB
MULTIPART_OVERHEAD_BYTES = 1 * MiB  # boundaries, part headers and the small form fields
MAX_RESTORE_BYTES = 512 * MiB  # POST /api/backup/restore
# An over-size body is still read (and thrown away) up to this much more, so that a client that
# sends the whole body before reading the answer gets the 413 instead of a reset connection.
DRAIN_BYTES = 128 * MiB
DRAIN_SECONDS = 10.0

_UPLOADS = re.compile(
    r"/api/(?:characters/import|lorebooks/import|chats/import|characters/\d+/sprites(?:/zip)?"
    r"|personas/\d+/avatar)"
)


def body_limit(path: str) -> int:
    """The most bytes a request body to ``path`` may have."""
    if path == "/api/backup/restore":
        return MAX_RESTORE_BYTES + MULTIPART_OVERHEAD_BYTES
    if _UPLOADS.fullmatch(path):
        return MAX_UPLOAD_BYTES + MULTIPART_OVERHEAD_BYTES
    return MAX_JSON_BYTES


def too_large_message(limit: int) -> str:
    return (
        f"The request body is larger than this route accepts ({limit // MiB} MiB). "
        "Send a shorter prompt or a smaller file."
    )


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` once a body passes its limit; answered as a 413 error."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, too_large_message(limit))


class BodyLimits:
    """The ASGI middleware that enforces ``body_limit``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = str(scope.get("path", ""))
        limit = body_limit(path)
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            if declared <= limit + DRAIN_BYTES:
                await _drain(receive, declared)
            await _refuse(send, limit, path)
            return
        received = 0
        started = False

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    if message.get("more_body", False):
                        await _drain(receive, DRAIN_BYTES)
                    raise BodyTooLarge(limit)
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except BodyTooLarge:
            if started:
                raise
            await _refuse(send, limit, path)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _drain(receive: Receive, most: int) -> None:
    """Reads and drops up to ``most`` more body bytes (for at most DRAIN_SECONDS)."""
    dropped = 0
    with anyio.move_on_after(DRAIN_SECONDS):
        while dropped < most:
            message = await receive()
            if message["type"] != "http.request":
                return
            dropped += len(message.get("body", b""))
            if not message.get("more_body", False):
                return


async def _refuse(send: Send, limit: int, path: str) -> None:
    error = edge_error_body(path, too_large_message(limit), type_="invalid_request_error")
    body = json.dumps(error).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})
