"""The engine layer: one Engine interface, an embedded (llama.cpp) and a remote implementation."""

from __future__ import annotations

from kataribe.engine.base import Engine
from kataribe.settings import Settings


def open_engine(settings: Settings) -> Engine:
    """The remote engine when a remote URL is configured, else the embedded one."""
    if settings.remote_url:
        from kataribe.engine.remote import RemoteConfig, RemoteEngine

        return RemoteEngine(
            RemoteConfig(
                base_url=settings.remote_url,
                api_key=settings.remote_api_key,
                model=settings.remote_model,
                n_ctx=settings.n_ctx,
            )
        )
    from kataribe.engine.default_model import default_model_path
    from kataribe.engine.llamacpp import EmbeddedConfig, EmbeddedEngine

    return EmbeddedEngine(
        EmbeddedConfig(
            model_path=settings.model or default_model_path(),
            n_ctx=settings.n_ctx,
            n_threads=settings.n_threads,
            n_gpu_layers=settings.n_gpu_layers,
            n_batch=settings.n_batch,
            kv_cache_ram_mb=settings.kv_cache_ram_mb,
            chat_template=settings.chat_template,
            alias=settings.model_alias,
        )
    )


__all__ = ["Engine", "open_engine"]
