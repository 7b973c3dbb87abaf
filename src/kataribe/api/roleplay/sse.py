"""Streams a role-play reply over SSE; a client that leaves stops the generation (partial text is kept)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import StreamingResponse

from kataribe.api.streaming import DISCONNECT_POLL_S, SSE_HEADERS, sse_event
from kataribe.errors import KataribeError
from kataribe.services.chat_replies import ReplyEvent

_END = object()
log = logging.getLogger(__name__)


def reply_stream(
    request: Request,
    events: AsyncIterator[ReplyEvent],
    *,
    on_disconnect: Callable[[], object],
    first: list[ReplyEvent] | None = None,
) -> StreamingResponse:
    """``event: token|message|speaker|error`` lines, then ``event: done``."""
    queue: asyncio.Queue[Any] = asyncio.Queue()

    async def pump() -> None:
        try:
            async for event in events:
                await queue.put(event)
        except KataribeError as exc:
            await queue.put(ReplyEvent("error", {"message": exc.message, "type": exc.error_type}))
        except Exception as exc:  # reported to the client; the server keeps running
            log.exception("reply stream failed")
            await queue.put(
                ReplyEvent(
                    "error", {"message": f"Internal error: {type(exc).__name__}", "type": "server_error"}
                )
            )
        finally:
            await queue.put(_END)

    async def body() -> AsyncIterator[bytes]:
        task = asyncio.get_running_loop().create_task(pump())
        try:
            for event in first or []:
                yield sse_event(event.kind, json.dumps(event.data, ensure_ascii=False))
            while True:
                try:
                    item = await asyncio.wait_for(queue.get(), DISCONNECT_POLL_S)
                except TimeoutError:
                    if await request.is_disconnected():
                        on_disconnect()
                        break
                    continue
                if item is _END:
                    yield sse_event("done", "{}")
                    break
                yield sse_event(item.kind, json.dumps(item.data, ensure_ascii=False))
        finally:
            if not task.done():
                on_disconnect()
                # let the generation finish storing what it has (it was just cancelled)
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(asyncio.shield(task), 30)

    return StreamingResponse(body(), media_type="text/event-stream", headers=SSE_HEADERS)
