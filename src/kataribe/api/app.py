"""Builds the ASGI app: OpenAI and KoboldCpp surfaces, health, error mapping, access guard."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from kataribe import __version__
from kataribe.api.body_limits import BodyLimits
from kataribe.api.cors import CompatCors
from kataribe.api.errors import install_error_handlers
from kataribe.api.kobold.router import kobold_router
from kataribe.api.kobold.serving import KoboldServing
from kataribe.api.llamaserver.router import llamaserver_router
from kataribe.api.llamaserver.serving import LlamaServerServing
from kataribe.api.llamaserver.tokenizers import Tokenizers
from kataribe.api.models.router import models_router
from kataribe.api.ollama.router import ollama_router
from kataribe.api.ollama.serving import OllamaServing
from kataribe.api.openai.router import openai_router
from kataribe.api.openai.serving import OpenAIServing
from kataribe.api.origins import OriginPatterns
from kataribe.api.roleplay.chats import chats_router
from kataribe.api.roleplay.library import library_router
from kataribe.api.roleplay.services import RoleplayServices
from kataribe.api.roleplay.transfer import transfer_router
from kataribe.api.security import AccessGuard, AccessPolicy, JsonByDefault, allowed_host_names
from kataribe.api.session import SessionStore
from kataribe.api.text_guard import RefuseLoneSurrogates
from kataribe.api.warmup import warm_up
from kataribe.api.web.connection import connection_router
from kataribe.api.web.expressions import expressions_router
from kataribe.api.web.headers import SecurityHeaders
from kataribe.api.web.login import login_router
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
    """Refuse to listen beyond this machine (or accept any Host) without an API key; check
    --cors-origins."""
    if not settings.is_loopback and not settings.api_key:
        raise ConfigError(
            f"Listening on {settings.host} makes the server reachable from other machines, so an "
            "API key is required. Set one with --api-key-file, KATARIBE_API_KEY or --api-key, or "
            "listen on 127.0.0.1."
        )
    if "*" in (h.strip() for h in settings.allowed_hosts) and not settings.api_key:
        raise ConfigError(
            "--allowed-hosts '*' accepts any Host name, so a web page could reach the server through "
            "DNS rebinding; an API key is required with it. Set one with --api-key-file (or "
            "KATARIBE_API_KEY), or list the host names instead of '*'."
        )
    OriginPatterns(settings.cors_origins)  # a malformed --cors-origins entry stops the start here


def create_app(settings: Settings, engine: Engine) -> FastAPI:
    check_exposure(settings)
    if not isinstance(engine, SwitchableEngine):
        engine = SwitchableEngine(engine)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await warm_up(_app, settings.api_key)  # the first request is as fast as the next (ENA waits 50 ms)
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
    sessions = SessionStore(settings.api_key, port=settings.port)
    app.include_router(login_router(sessions))
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.include_router(kobold_router(KoboldServing(engine), protected=bool(settings.api_key)))
    app.include_router(llamaserver_router(LlamaServerServing(engine), Tokenizers(engine)))
    app.include_router(ollama_router(OllamaServing(engine)))

    policy = AccessPolicy(
        allowed_hosts=allowed_host_names(settings.host, settings.allowed_hosts),
        bind_host=settings.host,
        port=settings.port,
        cors=OriginPatterns(settings.cors_origins),
        sessions=sessions,
    )
    app.add_middleware(RefuseLoneSurrogates)  # reads a JSON body whole: inside the size limit
    app.add_middleware(BodyLimits)  # a refused body is answered after the access checks
    app.add_middleware(JsonByDefault)
    app.add_middleware(AccessGuard, policy=policy)
    app.add_middleware(CompatCors, policy=policy)  # outside the guard: its 401/403 carry CORS too
    app.add_middleware(SecurityHeaders)
    return app
