"""HTTP routes of Ollama's API (no logic here: parse, call serving, shape); errors in Ollama's shape."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response, StreamingResponse

from kataribe.api.ollama.errors import OllamaRoute
from kataribe.api.ollama.schemas import ChatBody, GenerateBody, ShowBody
from kataribe.api.ollama.serving import OLLAMA_VERSION, OllamaServing, unsupported
from kataribe.api.streaming import SSE_HEADERS

NDJSON = "application/x-ndjson"


def ollama_router(serving: OllamaServing) -> APIRouter:
    router = APIRouter(tags=["Ollama-compatible"], route_class=OllamaRoute)

    @router.head("/", include_in_schema=False)
    async def heartbeat() -> Response:
        """Ollama's CLI and some clients check the server with HEAD / (GET / stays the web app)."""
        return Response()

    @router.get("/api/version")
    async def version() -> dict[str, str]:
        return {"version": OLLAMA_VERSION}

    @router.get("/api/tags")
    async def tags() -> dict[str, Any]:
        return await serving.tags()

    @router.get("/api/ps")
    async def ps() -> dict[str, Any]:
        return await serving.ps()

    @router.post("/api/show")
    async def show(body: ShowBody) -> dict[str, Any]:
        return await serving.show(body)

    @router.post("/api/generate", response_model=None)
    async def generate(body: GenerateBody, request: Request) -> Any:
        if body.stream:
            lines = await serving.generate_stream(body, request)
            return StreamingResponse(lines, media_type=NDJSON, headers=SSE_HEADERS)
        return await serving.generate(body, request)

    @router.post("/api/chat", response_model=None)
    async def chat(body: ChatBody, request: Request) -> Any:
        if body.stream:
            lines = await serving.chat_stream(body, request)
            return StreamingResponse(lines, media_type=NDJSON, headers=SSE_HEADERS)
        return await serving.chat(body, request)

    def refuse(call: str) -> Any:
        async def route() -> Response:
            raise unsupported(call)

        return route

    for call, method in (
        ("pull", "POST"),
        ("push", "POST"),
        ("create", "POST"),
        ("delete", "DELETE"),
        ("copy", "POST"),
        ("embed", "POST"),
        ("embeddings", "POST"),
    ):
        router.add_api_route(f"/api/{call}", refuse(call), methods=[method], status_code=501)
    for method in ("HEAD", "POST"):  # one route per method: OpenAPI wants one operation id each
        router.add_api_route(
            "/api/blobs/{digest}",
            refuse("blobs"),
            methods=[method],
            status_code=501,
            operation_id=f"ollama_blobs_{method.lower()}",
        )

    return router
