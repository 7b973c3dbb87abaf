"""Start-up warm-up, so the very first request is as fast as the later ones.

FastAPI builds each route's request handling (dependencies, body and response models) the first time
a request is matched against it: about 70 ms for Kataribe's routes, paid by whichever client asks first.
EasyNovelAssistant asks ``GET /api/v1/model`` once with a 50 ms timeout and, when it gives up, thinks no
server runs. So at start-up a few requests go through the whole app (with the API key when one is set),
one of them matching no route, which makes every route build its handling.
"""

from __future__ import annotations

import logging

from starlette.types import ASGIApp, Message

log = logging.getLogger(__name__)

WARM_UP_PATHS = ("/api/v1/model", "/api/extra/version", "/health", "/.kataribe-warm-up")
"""The last one matches nothing, so every route is tried (and built) on the way."""


async def _get(app: ASGIApp, path: str, api_key: str | None) -> int:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1")]
        + ([(b"authorization", f"Bearer {api_key}".encode())] if api_key else []),
        "client": ("127.0.0.1", 0),
        "server": ("127.0.0.1", 0),
    }
    await app(scope, receive, send)
    return int(next((m["status"] for m in sent if m["type"] == "http.response.start"), 0))


async def warm_up(app: ASGIApp, api_key: str | None) -> None:
    """Send ``WARM_UP_PATHS`` through ``app``; a failure is logged, never fatal."""
    for path in WARM_UP_PATHS:
        try:
            await _get(app, path, api_key)
        except Exception:  # warming up is an optimisation: the server starts regardless
            log.debug("warm-up request to %s failed", path, exc_info=True)
