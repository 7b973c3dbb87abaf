"""Settings: defaults < config file in the data dir < KATARIBE_* environment < command line."""

from __future__ import annotations

from pathlib import Path

import pytest

from kataribe.settings import load_settings


def test_data_dir_follows_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KATARIBE_DATA_DIR", str(tmp_path / "d"))
    s = load_settings()
    assert s.data_dir == tmp_path / "d"
    assert s.config_file == tmp_path / "d" / "config.toml"


def test_config_file_then_env_then_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KATARIBE_DATA_DIR", str(tmp_path))
    (tmp_path / "config.toml").write_text('port = 6001\nn_ctx = 2048\nallowed_hosts = ["a.lan"]\n')
    s = load_settings()
    assert (s.port, s.n_ctx, s.allowed_hosts) == (6001, 2048, ["a.lan"])
    monkeypatch.setenv("KATARIBE_PORT", "6002")
    monkeypatch.setenv("KATARIBE_ALLOWED_HOSTS", "b.lan, c.lan")
    s = load_settings()
    assert s.port == 6002 and s.n_ctx == 2048 and s.allowed_hosts == ["b.lan", "c.lan"]
    s = load_settings(port=6003, n_ctx=None)
    assert s.port == 6003 and s.n_ctx == 2048  # None from an unset CLI option does not override


def test_defaults_are_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KATARIBE_DATA_DIR", str(tmp_path))
    s = load_settings()
    assert s.host == "127.0.0.1" and s.api_key is None and s.remote_url is None and s.cors_origins == []


def test_bad_settings_give_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kataribe.errors import ConfigError

    monkeypatch.setenv("KATARIBE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("KATARIBE_PORT", "not-a-port")
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert "port" in err.value.message
    monkeypatch.delenv("KATARIBE_PORT")
    (tmp_path / "config.toml").write_text("port = [oops")
    with pytest.raises(ConfigError):
        load_settings()
