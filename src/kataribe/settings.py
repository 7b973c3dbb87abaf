"""All settings in one place: defaults < config file < environment (KATARIBE_*) < command line."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import platformdirs
from pydantic import AliasChoices, Field, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)
from pydantic_settings.exceptions import SettingsError

from kataribe.errors import ConfigError

CONFIG_FILE_NAME = "config.toml"
DEFAULT_PORT = 5001  # KoboldCpp's port: KoboldAI Lite, SillyTavern and EasyNovelAssistant expect it
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})


def default_data_dir() -> Path:
    """``KATARIBE_DATA_DIR`` if set, else the platform's user data dir."""
    env = os.environ.get("KATARIBE_DATA_DIR")
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_data_dir("kataribe", appauthor=False))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KATARIBE_", extra="ignore", populate_by_name=True)

    data_dir: Path = Field(default_factory=default_data_dir)

    database_url: str | None = None
    """SQLAlchemy URL of the library database; an SQLite file in the data dir when unset."""

    # server
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    api_key: str | None = None
    api_key_file: Path | None = None
    """A file holding the API key (first line), so the key shows in no process list."""
    allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Extra Host header values accepted besides loopback names and the bind address."""
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Web origins (besides this machine's pages) that may call the compatibility routes from a
    browser, e.g. https://lite.koboldai.net; ``scheme://host:*`` for any port."""

    # embedded engine
    model: Path | None = None
    """A GGUF file; the embedded SmolLM2 model when unset."""
    model_alias: str | None = None
    n_ctx: int | None = None
    """Context length; min(trained length, 8192) when unset."""
    n_threads: int | None = None
    """Threads; the number of physical cores when unset."""
    n_gpu_layers: int | None = None
    """Layers on the GPU; all of them when the build has a GPU backend, else 0."""
    n_batch: int = 512
    kv_cache_ram_mb: int = 1024
    """RAM for saved per-conversation KV states (least recently used dropped first)."""
    chat_template: str | None = None
    """A Jinja chat template that overrides the one in the GGUF."""

    # model library
    models_dir: Path | None = None
    """Where downloaded models go; data_dir/models when unset."""
    use_hf_cache: bool = False
    """Download into the standard Hugging Face cache (shared with other tools) instead."""
    hf_cache_dir: Path | None = Field(
        default=None, validation_alias=AliasChoices("KATARIBE_HF_CACHE_DIR", "HF_HUB_CACHE")
    )
    hf_endpoint: str = Field(
        default="https://huggingface.co", validation_alias=AliasChoices("KATARIBE_HF_ENDPOINT", "HF_ENDPOINT")
    )
    hf_token: str | None = Field(default=None, validation_alias=AliasChoices("KATARIBE_HF_TOKEN", "HF_TOKEN"))
    hf_offline: bool = Field(
        default=False, validation_alias=AliasChoices("KATARIBE_HF_OFFLINE", "HF_HUB_OFFLINE")
    )

    # remote engine
    remote_url: str | None = None
    remote_api_key: str | None = None
    remote_model: str | None = None

    @field_validator("allowed_hosts", "cors_origins", mode="before")
    @classmethod
    def _split_commas(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        return value

    @model_validator(mode="after")
    def _read_api_key_file(self) -> Settings:
        if self.api_key_file is None:
            return self
        if self.api_key:
            raise ValueError("give the API key one way: api_key or api_key_file, not both")
        path = self.api_key_file.expanduser()
        try:
            lines = path.read_text("utf-8-sig").splitlines()  # Notepad may save a BOM
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"cannot read the API key file {path}: {exc}") from None
        key = lines[0].strip() if lines else ""
        if not key:
            raise ValueError(f"the API key file {path} is empty; put the key on its first line")
        self.api_key = key
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            env_settings,
            TomlConfigSettingsSource(settings_cls, toml_file=config_file_path()),
        )

    @property
    def config_file(self) -> Path:
        return self.data_dir / CONFIG_FILE_NAME

    @property
    def library_dir(self) -> Path:
        return self.models_dir or self.data_dir / "models"

    @property
    def hub_cache_dir(self) -> Path:
        return self.hf_cache_dir or Path.home() / ".cache" / "huggingface" / "hub"

    @property
    def is_loopback(self) -> bool:
        return self.host in LOOPBACK_HOSTS


def config_file_path() -> Path:
    return default_data_dir() / CONFIG_FILE_NAME


def load_settings(**overrides: Any) -> Settings:
    """Settings from every source; ``overrides`` (from the command line) win. None means unset."""
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**given)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigError(
            f"Invalid setting ({problems}). Check the command line, KATARIBE_* variables and "
            f"{config_file_path()}."
        ) from exc
    except (SettingsError, ValueError) as exc:
        raise ConfigError(f"Cannot read the settings: {exc}. Check {config_file_path()}.") from exc
