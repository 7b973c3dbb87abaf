"""Reading a GenerationStream from an HTTP handler: cancel it when the client goes away.

A streamed response starts (status and headers) as soon as the job is queued, before the prompt is
processed; a failure after that is an error event in the stream, in each wire format's own shape."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request

from kataribe.engine.base import GenerationDone, GenerationEvent, GenerationStream
from kataribe.errors import KataribeError

DISCONNECT_POLL_S = 0.1


class ClientGone(Exception):
    """The HTTP client disconnected; its generation was cancelled."""


async def follow(stream: GenerationStream, request: Request) -> AsyncIterator[GenerationEvent]:
    """Yield the stream's events; a disconnect (also while the prompt is processed) cancels it."""
    finished = False
    try:
        while True:
            event = await stream.next_event(DISCONNECT_POLL_S)
            if event is None:
                if await request.is_disconnected():
                    stream.cancel()
                    raise ClientGone()
                continue
            if isinstance(event, GenerationDone):
                finished = True
            yield event
            if finished:
                return
    finally:
        if not finished:  # the consumer stopped early (disconnect, error, or cancelled task)
            stream.cancel()


def error_payload(done: GenerationDone) -> dict[str, str]:
    """What a stream says when its generation failed after the response had started."""
    error = done.error
    if isinstance(error, KataribeError):
        return {"message": error.message, "type": error.error_type}
    return {"message": f"Generation failed: {error}", "type": "server_error"}


def sse_data(payload: str) -> bytes:
    return f"data: {payload}\n\n".encode()


def sse_event(event: str, payload: str) -> bytes:
    return f"event: {event}\ndata: {payload}\n\n".encode()


SSE_HEADERS: dict[str, Any] = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def raise_if_failed(done: GenerationDone) -> None:
    """A failed generation becomes its typed error (mapped to an HTTP status in one place)."""
    if done.finish_reason == "error":
        if isinstance(done.error, KataribeError):
            raise done.error
        raise KataribeError(f"Generation failed: {done.error}")
