"""Routes for the running engine: what is loaded, and switching to a remote OpenAI-compatible backend."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from kataribe.engine.remote import RemoteConfig, RemoteEngine
from kataribe.engine.switchable import SwitchableEngine
from kataribe.errors import BackendError, InvalidRequest, KataribeError
from kataribe.services.models import ModelLibrary


class RemoteBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    base_url: str = Field(min_length=1, max_length=2000)
    api_key: str | None = Field(default=None, max_length=4096)
    model: str | None = Field(default=None, max_length=500)


def engine_view(engine: SwitchableEngine) -> dict[str, Any]:
    """What runs now; a remote backend's key is never included, only whether one is set."""
    if engine.loading is not None:
        return {"loading": engine.loading, "engine": None, "model": None, "n_ctx": None, "remote": None}
    try:
        caps = engine.capabilities()
    except KataribeError as exc:
        return {
            "loading": None,
            "engine": None,
            "model": None,
            "n_ctx": None,
            "remote": None,
            "error": exc.message,
        }
    current = engine.current
    remote = None
    if isinstance(current, RemoteEngine):
        remote = {
            "base_url": current.config.base_url,
            "model": current.config.model,
            "api_key_set": bool(current.config.api_key),
        }
    return {
        "loading": None,
        "engine": caps.engine,
        "model": caps.model,
        "n_ctx": caps.n_ctx,
        "label": engine.label,
        "remote": remote,
    }


def connect_remote(library: ModelLibrary, body: RemoteBody) -> dict[str, Any]:
    engine = library.engine
    if engine is None:
        raise InvalidRequest("This server cannot switch engines.")
    config = RemoteConfig(
        base_url=body.base_url.strip(), api_key=body.api_key or None, model=body.model or None
    )
    # Reach the backend before unloading anything: a wrong URL must leave the current model running.
    try:
        remote = RemoteEngine(config)
    except KataribeError as exc:
        raise BackendError(f"Could not use the remote backend at {config.base_url}: {exc.message}") from None
    except Exception as exc:  # a network library error: report it, never a 500 with a traceback
        raise BackendError(
            f"Could not reach the remote backend at {config.base_url} ({type(exc).__name__}). "
            "Check the URL and that the server is running."
        ) from None
    engine.switch(lambda: remote, label=f"remote {remote.model_name}")
    library.current_path = None
    return engine_view(engine)


def connection_router(library: ModelLibrary) -> APIRouter:
    router = APIRouter(prefix="/api/engine", tags=["Models"])

    @router.get("")
    def current_engine() -> dict[str, Any]:
        if library.engine is None:
            raise InvalidRequest("This server has no switchable engine.")
        return engine_view(library.engine)

    @router.put("/remote")
    def use_remote(body: RemoteBody) -> dict[str, Any]:
        """Switch the running engine to an OpenAI-compatible server (vLLM, llama-server, KoboldCpp...)."""
        return connect_remote(library, body)

    return router
