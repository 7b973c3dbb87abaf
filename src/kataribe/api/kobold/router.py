"""HTTP routes of the KoboldCpp-compatible API."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import StreamingResponse

from kataribe.api.kobold.schemas import (
    DetokenizeRequest,
    GenKeyRequest,
    KoboldGenerateRequest,
    TokenCountRequest,
)
from kataribe.api.kobold.serving import KOBOLD_UNITED_VERSION, KoboldServing
from kataribe.api.streaming import SSE_HEADERS


async def _optional_genkey(request: Request) -> str:
    """check and abort accept an empty body, a JSON body, or nothing at all."""
    raw = await request.body()
    if not raw.strip():
        return ""
    try:
        return GenKeyRequest.model_validate_json(raw).genkey
    except ValueError:
        return ""


def kobold_router(serving: KoboldServing, *, protected: bool) -> APIRouter:
    router = APIRouter(prefix="/api", tags=["KoboldCpp-compatible"])

    for base in ("/v1", "/latest"):
        router.add_api_route(f"{base}/model", serving.model, methods=["GET"])
        router.add_api_route(f"{base}/config/max_context_length", serving.max_context_length, methods=["GET"])
        router.add_api_route(f"{base}/config/max_length", serving.max_length, methods=["GET"])
        router.add_api_route(
            f"{base}/info/version", lambda: {"result": KOBOLD_UNITED_VERSION}, methods=["GET"]
        )

        @router.post(f"{base}/generate")
        async def generate(body: KoboldGenerateRequest, request: Request) -> dict[str, Any]:
            return await serving.generate(body, request)

    @router.get("/extra/version")
    async def version() -> dict[str, Any]:
        return serving.version(protected)

    @router.get("/extra/true_max_context_length")
    async def true_max_context_length() -> dict[str, int]:
        return serving.max_context_length()

    @router.get("/extra/perf")
    async def perf() -> dict[str, Any]:
        return serving.perf()

    @router.post("/extra/generate/stream")
    async def generate_stream(body: KoboldGenerateRequest, request: Request) -> StreamingResponse:
        events = await serving.generate_stream(body, request)
        return StreamingResponse(events, media_type="text/event-stream", headers=SSE_HEADERS)

    @router.post("/extra/generate/check")
    async def check(request: Request) -> dict[str, Any]:
        return serving.check(await _optional_genkey(request))

    @router.get("/extra/generate/check")
    async def check_get() -> dict[str, Any]:
        return serving.check("")

    @router.post("/extra/abort")
    async def abort(request: Request) -> dict[str, str]:
        return serving.abort(await _optional_genkey(request))

    # plain def: FastAPI runs these in its thread pool (a remote engine asks its server over HTTP)
    @router.post("/extra/tokencount")
    def tokencount(body: TokenCountRequest) -> dict[str, Any]:
        return serving.token_count(body.prompt, special=body.special)

    @router.post("/extra/detokenize")
    def detokenize(body: DetokenizeRequest) -> dict[str, Any]:
        return {"result": serving.engine.detokenize(body.ids), "success": True}

    @router.post("/extra/preloadstory")
    async def preloadstory() -> dict[str, Any]:
        """KoboldCpp's answer when it was started without a story to preload (Lite asks on connect)."""
        return {}

    outer = APIRouter()
    outer.include_router(router)

    @outer.get("/sdapi/v1/sd-models", tags=["KoboldCpp-compatible"])
    async def sd_models() -> list[dict[str, Any]]:
        """No image model: KoboldCpp's answer without one (Lite probes it on connect)."""
        return []

    return outer
