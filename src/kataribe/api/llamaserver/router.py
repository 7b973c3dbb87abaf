"""HTTP routes of llama-server's native API and the tokenizer routes of vLLM, Aphrodite and
text-generation-webui (no logic here: parse, call serving, shape)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import StreamingResponse

from kataribe.api.llamaserver.schemas import (
    CompletionBody,
    DecodeBody,
    DetokenizeBody,
    EncodeBody,
    TokenizeBody,
    VllmTokenizeBody,
)
from kataribe.api.llamaserver.serving import LlamaServerServing
from kataribe.api.llamaserver.tokenizers import Tokenizers
from kataribe.api.streaming import SSE_HEADERS


def llamaserver_router(serving: LlamaServerServing, tokenizers: Tokenizers) -> APIRouter:
    router = APIRouter(tags=["llama-server-compatible"])

    async def completion(body: CompletionBody, request: Request) -> Any:
        if body.stream:
            chunks = await serving.complete_stream(body, request)
            return StreamingResponse(chunks, media_type="text/event-stream", headers=SSE_HEADERS)
        return await serving.complete(body, request)

    for path in ("/completion", "/completions"):
        router.add_api_route(path, completion, methods=["POST"], response_model=None)

    @router.get("/props")
    async def props() -> dict[str, Any]:
        return await serving.props()

    @router.get("/slots")
    async def slots() -> list[dict[str, Any]]:
        return serving.slots()

    @router.post("/tokenize")
    async def tokenize(body: TokenizeBody) -> dict[str, Any]:
        return await tokenizers.tokenize(body)

    @router.post("/detokenize")
    async def detokenize(body: DetokenizeBody) -> dict[str, str]:
        return await tokenizers.detokenize(body.tokens)

    # Aphrodite (and vLLM under /v1)
    @router.post("/v1/tokenize")
    async def v1_tokenize(body: VllmTokenizeBody) -> dict[str, Any]:
        return await tokenizers.vllm_tokens(body.prompt)

    @router.post("/v1/detokenize")
    async def v1_detokenize(body: DetokenizeBody) -> dict[str, str]:
        return await tokenizers.detokenize(body.tokens)

    # text-generation-webui: SillyTavern's Default type
    @router.get("/v1/internal/model/info")
    async def model_info() -> dict[str, Any]:
        return tokenizers.model_info()

    @router.post("/v1/internal/encode")
    async def encode(body: EncodeBody) -> dict[str, Any]:
        return await tokenizers.encode(body.text)

    @router.post("/v1/internal/token-count")
    async def token_count(body: EncodeBody) -> dict[str, int]:
        return await tokenizers.token_count(body.text)

    @router.post("/v1/internal/decode")
    async def decode(body: DecodeBody) -> dict[str, str]:
        return await tokenizers.decode(body.tokens)

    return router
