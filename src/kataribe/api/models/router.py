"""Routes of the model library (/api/models, /api/hub)."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response, StreamingResponse

from kataribe.api.streaming import DISCONNECT_POLL_S, SSE_HEADERS, sse_event
from kataribe.errors import KataribeError
from kataribe.library.download import DownloadProgress
from kataribe.services.models import Download, ModelLibrary


class AddModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str = Field(min_length=1, max_length=4096)
    name: str | None = Field(default=None, max_length=200)


class ModelPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    settings: dict[str, Any]
    """Remembered load settings: n_ctx, n_gpu_layers, n_threads, kv_cache_ram_mb, chat_template."""


class PullBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    repo_id: str = Field(min_length=3, max_length=200, pattern=r"^[\w.\-]+/[\w.\-]+$")
    file: str = Field(min_length=1, max_length=500)
    """A model name from the files listing, or one of its file paths."""


def models_router(library: ModelLibrary, load: Any) -> APIRouter:
    """``load(model_id)`` switches the running engine (it knows how to build one)."""
    router = APIRouter(prefix="/api", tags=["Models"])

    @router.get("/models")
    def list_models() -> dict[str, Any]:
        return {"models": library.list_all(), "loading": library.engine.loading if library.engine else None}

    @router.post("/models", status_code=201)
    def add_model(body: AddModel) -> dict[str, Any]:
        """Register a GGUF file where it already is (nothing is copied)."""
        return library.add(Path(body.path), name=body.name)

    @router.get("/models/recommendations")
    def recommendations(
        use: str | None = None, language: str | None = None, censorship: str | None = None
    ) -> list[dict[str, Any]]:
        """Suggested models for chat, novels and adventures, with quantization and template."""
        return library.recommendations(use=use, language=language, censorship=censorship)

    @router.get("/models/{model_id}")
    def get_model(model_id: int) -> dict[str, Any]:
        return library.view(model_id)

    @router.patch("/models/{model_id}")
    def patch_model(model_id: int, body: ModelPatch) -> dict[str, Any]:
        return library.update_settings(model_id, body.settings)

    @router.delete("/models/{model_id}", status_code=204)
    def delete_model(model_id: int, delete_file: bool = False) -> Response:
        library.remove(model_id, delete_file=delete_file)
        return Response(status_code=204)

    @router.get("/models/{model_id}/fit")
    def fit(model_id: int, n_ctx: int | None = None) -> dict[str, Any]:
        return library.fit(model_id, n_ctx=n_ctx)

    @router.post("/models/{model_id}/load")
    def load_model(model_id: int) -> dict[str, Any]:
        """Unload the current model and load this one (its remembered or automatic settings)."""
        result: dict[str, Any] = load(model_id)
        return result

    @router.get("/hub/search")
    def search(
        q: str | None = None, sort: Literal["downloads", "likes", "recent"] = "downloads", limit: int = 30
    ) -> list[dict[str, Any]]:
        return library.search(q, sort=sort, limit=max(1, min(limit, 100)))

    @router.get("/hub/files")
    def files(repo: str) -> list[dict[str, Any]]:
        return library.files(repo)

    @router.post("/hub/pull")
    async def pull(body: PullBody, request: Request) -> StreamingResponse:
        """Download with live progress (SSE). Leaving, or POST /api/hub/downloads/{id}/cancel, stops it;
        the partial file stays and the next pull resumes it."""
        download = Download(
            id=uuid.uuid4().hex[:12], repo_id=body.repo_id, group=body.file, cancel=threading.Event()
        )
        library.downloads[download.id] = download
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()

        def on_progress(p: DownloadProgress) -> None:
            download.progress = p
            data = {
                "downloaded": p.downloaded,
                "total": p.total,
                "bytes_per_s": p.bytes_per_s,
                "resumed_from": p.resumed_from,
            }
            loop.call_soon_threadsafe(queue.put_nowait, ("progress", data))

        def work() -> None:
            try:
                entry = library.pull(body.repo_id, body.file, progress=on_progress, cancel=download.cancel)
                download.model_id = entry["id"]
                loop.call_soon_threadsafe(queue.put_nowait, ("model", entry))
            except KataribeError as exc:
                download.error = exc.message
                loop.call_soon_threadsafe(queue.put_nowait, ("error", {"message": exc.message}))
            except Exception as exc:  # reported, never a dead stream
                download.error = str(exc)
                loop.call_soon_threadsafe(queue.put_nowait, ("error", {"message": f"Download failed: {exc}"}))
            finally:
                download.done = True
                loop.call_soon_threadsafe(queue.put_nowait, ("done", {}))

        threading.Thread(target=work, daemon=True, name=f"download-{download.id}").start()

        async def events() -> AsyncIterator[bytes]:
            yield sse_event("download", json.dumps({"id": download.id}))
            try:
                while True:
                    try:
                        kind, data = await asyncio.wait_for(queue.get(), DISCONNECT_POLL_S)
                    except TimeoutError:
                        if await request.is_disconnected():
                            download.cancel.set()
                            return
                        continue
                    yield sse_event(kind, json.dumps(data, ensure_ascii=False))
                    if kind == "done":
                        return
            finally:
                if not download.done:
                    download.cancel.set()

        return StreamingResponse(events(), media_type="text/event-stream", headers=SSE_HEADERS)

    @router.post("/hub/downloads/{download_id}/cancel")
    def cancel(download_id: str) -> dict[str, bool]:
        download = library.downloads.get(download_id)
        if download is None or download.done:
            return {"cancelled": False}
        download.cancel.set()
        return {"cancelled": True}

    return router
