"""What the llama-server and Ollama surfaces report about the loaded model: its file, GGUF metadata,
chat template and context (read from the file's header once per file version)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from kataribe.engine.base import Engine
from kataribe.engine.gguf_meta import GgufHeader, quantization_name, read_gguf_header
from kataribe.engine.switchable import SwitchableEngine

UNKNOWN_ARCH = "unknown"


@dataclass(frozen=True)
class ModelFacts:
    name: str
    engine: str
    n_ctx: int
    """The context the loaded model runs with (what one request can use)."""
    path: str | None = None
    size: int = 0
    modified_at: datetime = field(default_factory=lambda: datetime.fromtimestamp(0, UTC))
    architecture: str = UNKNOWN_ARCH
    parameter_count: int = 0
    size_label: str | None = None
    quantization: str | None = None
    trained_context: int | None = None
    chat_template: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    """The GGUF header's scalar keys (token lists and the chat template left out)."""

    @property
    def digest(self) -> str:
        """A stable identifier of this model file (path, size and time; not a hash of the contents)."""
        key = f"{self.path or self.name}:{self.size}:{self.modified_at.timestamp()}"
        return hashlib.sha256(key.encode()).hexdigest()

    @property
    def parameter_size(self) -> str:
        """Ollama's way of saying the size: '135M', '7.2B' (the GGUF's size label when it has one)."""
        if self.size_label:
            return self.size_label
        count = self.parameter_count
        if count >= 1_000_000_000:
            return f"{count / 1e9:.1f}B"
        return f"{count / 1e6:.0f}M" if count else ""


def _model_path(engine: Engine) -> Path | None:
    inner = engine.current if isinstance(engine, SwitchableEngine) else engine
    path = getattr(getattr(inner, "config", None), "model_path", None)
    return Path(path) if path is not None else None


def _template_override(engine: Engine) -> str | None:
    inner = engine.current if isinstance(engine, SwitchableEngine) else engine
    template = getattr(getattr(inner, "config", None), "chat_template", None)
    return template if isinstance(template, str) and template else None


@lru_cache(maxsize=8)
def _header(path: str, _size: int, _mtime: float) -> GgufHeader:
    return read_gguf_header(Path(path))


def model_facts(engine: Engine) -> ModelFacts:
    """Facts about the loaded model (reads a GGUF header on first use: call it off the event loop)."""
    caps = engine.capabilities()
    path = _model_path(engine)
    if path is None or not path.is_file():
        return ModelFacts(name=caps.model, engine=caps.engine, n_ctx=caps.n_ctx)
    stat = path.stat()
    header = _header(str(path), stat.st_size, stat.st_mtime)
    md = header.metadata
    arch = str(md.get("general.architecture", UNKNOWN_ARCH))
    template = md.get("tokenizer.chat_template")
    trained = md.get(f"{arch}.context_length")
    return ModelFacts(
        name=caps.model,
        engine=caps.engine,
        n_ctx=caps.n_ctx,
        path=str(path),
        size=stat.st_size,
        modified_at=datetime.fromtimestamp(stat.st_mtime, UTC),
        architecture=arch,
        parameter_count=header.parameter_count,
        size_label=md.get("general.size_label"),
        quantization=quantization_name(md.get("general.file_type")),
        trained_context=trained if isinstance(trained, int) else None,
        chat_template=_template_override(engine) or (template if isinstance(template, str) else ""),
        metadata={
            k: v
            for k, v in md.items()
            if k != "tokenizer.chat_template" and isinstance(v, str | int | float | bool)
        },
    )
