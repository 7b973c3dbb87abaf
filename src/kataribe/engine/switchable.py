"""SwitchableEngine: the engine the app holds; the model behind it can be swapped at run time."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from kataribe.engine.base import (
    Capabilities,
    ChatMessage,
    Engine,
    GenerationRequest,
    GenerationStream,
    TokenCount,
)
from kataribe.errors import KataribeError

EngineFactory = Callable[[], Engine]


class EngineUnavailable(KataribeError):
    status_code = 503
    error_type = "server_error"


class SwitchableEngine:
    """Delegates to the current engine. ``switch`` unloads it first (two big models rarely fit in
    memory at once), loads the next, and reloads the previous one if the next fails to load.

    Requests that arrive while a model loads get a 503 that says so; jobs of the old model are
    cancelled when it unloads (their streams end with finish reason ``cancelled``).
    """

    def __init__(self, engine: Engine, factory: EngineFactory | None = None, *, label: str = "") -> None:
        self._engine: Engine | None = engine
        self._factory = factory or _rebuild(engine)
        self.label = label
        self._lock = threading.Lock()
        self._loading: str | None = None

    @property
    def current(self) -> Engine:
        engine = self._engine
        if engine is None:
            raise EngineUnavailable(
                f"The model {self._loading or ''} is loading; try again in a moment.".replace("  ", " ")
            )
        return engine

    @property
    def loading(self) -> str | None:
        return self._loading

    def switch(self, factory: EngineFactory, *, label: str = "") -> Engine:
        """Replace the model. Raises the loader's error (with the old model back) if it fails."""
        with self._lock:
            old, old_factory = self._engine, self._factory
            self._loading = label or "the new model"
            self._engine = None
            try:
                if old is not None:
                    old.close()
                try:
                    new = factory()
                except BaseException:
                    if old_factory is not None:
                        self._engine = old_factory()  # put the previous model back
                    raise
                self._engine, self._factory, self.label = new, factory, label
                return new
            finally:
                self._loading = None

    # -- Engine protocol: delegate --
    @property
    def model_name(self) -> str:
        return self.current.model_name

    def capabilities(self) -> Capabilities:
        return self.current.capabilities()

    def tokenize(self, text: str, *, special: bool = False) -> list[int]:
        return self.current.tokenize(text, special=special)

    def count_tokens(self, text: str) -> TokenCount:
        return self.current.count_tokens(text)

    def detokenize(self, ids: Sequence[int]) -> str:
        return self.current.detokenize(ids)

    def render_chat(
        self, messages: Sequence[ChatMessage], add_generation_prompt: bool = True, *, reshape: bool = True
    ) -> str:
        return self.current.render_chat(messages, add_generation_prompt, reshape=reshape)

    def generate(self, request: GenerationRequest) -> GenerationStream:
        return self.current.generate(request)

    def find_job(self, label: str | None) -> GenerationStream | None:
        engine = self._engine
        return engine.find_job(label) if engine is not None else None

    def queue_depth(self) -> int:
        engine = self._engine
        return engine.queue_depth() if engine is not None else 0

    def close(self) -> None:
        with self._lock:
            if self._engine is not None:
                self._engine.close()
                self._engine = None


def _rebuild(engine: Engine) -> EngineFactory | None:
    """How to load this engine again (both engines are built from a config object)."""
    config = getattr(engine, "config", None)
    if config is None:
        return None
    kind = type(engine)
    return lambda: kind(config)  # type: ignore[call-arg]
