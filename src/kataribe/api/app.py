"""Builds the ASGI app: OpenAI and KoboldCpp surfaces, health, error mapping, access guard."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles

from kataribe import __version__
from kataribe.api.errors import install_error_handlers
from kataribe.api.kobold.router import kobold_router
from kataribe.api.kobold.serving import KoboldServing
from kataribe.api.models.router import models_router
from kataribe.api.openai.router import openai_router
from kataribe.api.openai.serving import OpenAIServing
from kataribe.api.roleplay.chats import chats_router
from kataribe.api.roleplay.library import library_router
from kataribe.api.roleplay.services import RoleplayServices
from kataribe.api.roleplay.transfer import transfer_router
from kataribe.api.security import AccessGuard, JsonByDefault, allowed_host_names
from kataribe.api.text_guard import RefuseLoneSurrogates
from kataribe.api.web.connection import connection_router
from kataribe.api.web.expressions import expressions_router
from kataribe.api.web.headers import SecurityHeaders
from kataribe.api.web.presets import presets_router
from kataribe.api.web.router import STATIC, web_router
from kataribe.engine.base import Engine
from kataribe.engine.switchable import SwitchableEngine
from kataribe.errors import ConfigError
from kataribe.services.context import RoleplayContext
from kataribe.services.models import ModelLibrary
from kataribe.settings import Settings


def _model_path(engine: SwitchableEngine) -> str | None:
    config = getattr(engine.current, "config", None)
    path = getattr(config, "model_path", None)
    return str(path) if path is not None else None


def check_exposure(settings: Settings) -> None:
    """Refuse to listen beyond this machine without an API key."""
    if not settings.is_loopback and not settings.api_key:
        raise ConfigError(
            f"Listening on {settings.host} makes the server reachable from other machines, so an "
            "API key is required. Set one with --api-key (or KATARIBE_API_KEY), or listen on 127.0.0.1."
        )


def create_app(settings: Settings, engine: Engine) -> FastAPI:
    check_exposure(settings)
    if not isinstance(engine, SwitchableEngine):
        engine = SwitchableEngine(engine)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        roleplay.groups.stop_all()
        roleplay.ctx.close()

    app = FastAPI(
        lifespan=lifespan,
        title="Kataribe",
        version=__version__,
        description="Local LLM server: OpenAI- and KoboldCpp-compatible APIs.",
    )
    app.state.engine = engine
    app.state.settings = settings
    install_error_handlers(app)

    @app.get("/health", tags=["server"])
    async def health() -> dict[str, Any]:
        if engine.loading is not None:
            return {"status": "loading", "version": __version__, "model": engine.loading, "queue": 0}
        caps = engine.capabilities()
        return {
            "status": "ok",
            "version": __version__,
            "engine": caps.engine,
            "model": caps.model,
            "n_ctx": caps.n_ctx,
            "queue": engine.queue_depth(),
        }

    roleplay = RoleplayServices.build(RoleplayContext.open(settings.data_dir, engine, settings.database_url))
    app.state.roleplay = roleplay
    roleplay.ctx.collect_assets()
    app.include_router(library_router(roleplay))
    app.include_router(chats_router(roleplay))
    app.include_router(transfer_router(roleplay))
    library = ModelLibrary(roleplay.ctx.db, settings, engine)
    library.ensure_built_in()
    library.current_path = _model_path(engine)
    app.state.models = library
    app.include_router(models_router(library, library.load))
    app.include_router(expressions_router(roleplay))
    app.include_router(presets_router(roleplay))
    app.include_router(connection_router(library))
    app.include_router(openai_router(OpenAIServing(engine)))
    app.include_router(web_router(engine))
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.include_router(kobold_router(KoboldServing(engine), protected=bool(settings.api_key)))

    app.add_middleware(RefuseLoneSurrogates)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["*"],
            allow_headers=["*"],
        )
    app.add_middleware(JsonByDefault)
    app.add_middleware(
        AccessGuard,
        allowed_hosts=allowed_host_names(settings.host, settings.allowed_hosts),
        api_key=settings.api_key,
        cors_origins=settings.cors_origins,
    )
    app.add_middleware(SecurityHeaders)
    return app
