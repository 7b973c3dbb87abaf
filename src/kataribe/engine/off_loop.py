"""Blocking engine work (tokenizing a prompt, planning a turn) run in a worker thread, off the event loop.

``engine.generate()`` renders and tokenizes the prompt in the caller's thread: on the event loop a
long prompt stopped every other request (10 MB: 9 s). A stream made in the worker thread still
hands its events to the calling loop (``STREAM_LOOP``), so it is read with ``async for`` as before.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import anyio.to_thread

from kataribe.engine.base import STREAM_LOOP, Engine, GenerationRequest, GenerationStream

P = ParamSpec("P")
T = TypeVar("T")


async def run_off_loop(func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """``func(*args, **kwargs)`` in a worker thread; streams it starts deliver to this loop."""
    loop = asyncio.get_running_loop()

    def call() -> T:
        token = STREAM_LOOP.set(loop)
        try:
            return func(*args, **kwargs)
        finally:
            STREAM_LOOP.reset(token)

    return await anyio.to_thread.run_sync(call)


async def generate_off_loop(engine: Engine, request: GenerationRequest) -> GenerationStream:
    """``engine.generate(request)`` in a worker thread (errors raise here, before any byte is sent).

    Should the caller be cancelled meanwhile, the job that was just queued is cancelled too.
    """
    started: list[GenerationStream] = []

    def start() -> GenerationStream:
        stream = engine.generate(request)
        started.append(stream)
        return stream

    try:
        return await run_off_loop(start)
    except BaseException:
        for stream in started:
            stream.cancel()
        raise
