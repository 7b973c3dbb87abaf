"""HTTP routes of the OpenAI-compatible API (no logic here: parse, call serving, shape)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import StreamingResponse

from kataribe.api.openai.schemas import ChatCompletionRequest, CompletionRequest
from kataribe.api.openai.serving import OpenAIServing
from kataribe.api.streaming import SSE_HEADERS


def openai_router(serving: OpenAIServing) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["OpenAI-compatible"])

    @router.get("/models")
    async def list_models() -> dict[str, Any]:
        return serving.list_models()

    @router.post("/chat/completions", response_model=None)
    async def chat_completions(body: ChatCompletionRequest, request: Request) -> Any:
        if body.stream:
            chunks = await serving.chat_stream(body, request)
            return StreamingResponse(chunks, media_type="text/event-stream", headers=SSE_HEADERS)
        return await serving.chat(body, request)

    @router.post("/completions", response_model=None)
    async def completions(body: CompletionRequest, request: Request) -> Any:
        if body.stream:
            chunks = await serving.complete_stream(body, request)
            return StreamingResponse(chunks, media_type="text/event-stream", headers=SSE_HEADERS)
        return await serving.complete(body, request)

    return router
