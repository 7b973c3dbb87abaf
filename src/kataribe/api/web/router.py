"""Routes for the browser app's files and its server-side helpers (rendering, UI settings)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import FileResponse, Response

from kataribe.engine.base import Engine
from kataribe.web.render import render_markdown

STATIC = Path(str(resources.files("kataribe.web").joinpath("static")))


class RenderBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    texts: list[str] = Field(max_length=500)


class TokenizeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    texts: list[str] = Field(max_length=200)


def web_router(engine: Engine) -> APIRouter:
    router = APIRouter(tags=["Browser app"])

    @router.get("/", include_in_schema=False)
    def index() -> Response:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @router.post("/api/render")
    def render(body: RenderBody) -> dict[str, list[str]]:
        """Markdown to sanitized HTML (allow-list), for showing untrusted text."""
        return {"html": [render_markdown(t) for t in body.texts]}

    @router.post("/api/tokenize")
    def tokenize(body: TokenizeBody) -> dict[str, Any]:
        """Token counts with the loaded model's tokenizer (``estimated`` when it has none)."""
        counts = [engine.count_tokens(t) if t else None for t in body.texts]
        return {
            "counts": [c.count if c else 0 for c in counts],
            "estimated": any(c.estimated for c in counts if c),
        }

    return router
