from pathlib import Path

import pytest
from pydantic import ValidationError

from printgate.errors import ConfigError
from printgate.settings import Settings


def test_defaults_are_the_embedded_demo() -> None:
    s = Settings.load()
    assert s.database_url.startswith("sqlite+aiosqlite")
    assert s.gateway.firewall == "inprocess"
    assert s.gateway.dwa_domain == "dwa.localhost"


def test_environment_overrides_nested_sections(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRINTGATE_DATABASE_URL", "postgresql+asyncpg://x@127.0.0.1/db")
    monkeypatch.setenv("PRINTGATE_GATEWAY__DWA_DOMAIN", "dwa.example.test")
    s = Settings.load()
    assert s.database_url == "postgresql+asyncpg://x@127.0.0.1/db"
    assert s.gateway.dwa_domain == "dwa.example.test"


def test_toml_file_is_read_and_env_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "printgate.toml"
    cfg.write_text('log_level = "debug"\n[gateway]\nproxy_port = 9999\nrelay_port = 9998\n')
    monkeypatch.setenv("PRINTGATE_GATEWAY__RELAY_PORT", "7777")
    s = Settings.load(cfg)
    assert s.log_level == "debug"
    assert s.gateway.proxy_port == 9999
    assert s.gateway.relay_port == 7777


def test_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        Settings.load(tmp_path / "nope.toml")


def test_unknown_and_wrongly_typed_keys_are_refused(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[gateway]\nproxy_port = "not a port"\n')
    with pytest.raises(ValidationError):
        Settings.load(cfg)
    cfg.write_text("typo_key = 1\n")
    with pytest.raises(ValidationError):
        Settings.load(cfg)


def test_proxy_connection_limits_are_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRINTGATE_GATEWAY__PROXY_MAX_CONNECTIONS_PER_SOURCE", "1024")
    s = Settings.load()
    assert s.gateway.proxy_max_connections_per_source == 1024
    assert s.gateway.proxy_header_timeout_seconds == 10.0
    monkeypatch.setenv("PRINTGATE_GATEWAY__PROXY_HEADER_TIMEOUT_SECONDS", "0")
    with pytest.raises((ConfigError, ValidationError)):
        Settings.load()
