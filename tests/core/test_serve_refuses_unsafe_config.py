"""`printgate serve` refuses a missing or placeholder secret_key and a port something else listens on
(as relay_port = 22 with the host's sshd), saying what to set; the shipped examples pass as they stand."""

from __future__ import annotations

import json
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from printgate.cli.serve_checks import (
    check_ports,
    checked_for_serving,
    listening_ports,
    resolve_secret_key,
)
from printgate.errors import ConfigError
from printgate.settings import PortalSettings, Settings

PRINTGATE = str(Path(sys.executable).with_name("printgate"))
DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "config"
GOOD_KEY = "k" * 20 + "Zq0-9_x" * 4


def _serve(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PRINTGATE, "serve", "--config", str(config)], capture_output=True, text=True,
                          timeout=120)


def _toml(path: Path, *, secret: str | None, relay_port: int, tmp: Path) -> Path:
    lines = [f'database_url = "sqlite+aiosqlite:///{tmp}/p.db"', "[portal]", "port = 0"]
    if secret is not None:
        lines.append(f"secret_key = {json.dumps(secret)}")
    lines += ["[gateway]", f"relay_port = {relay_port}", "proxy_port = 0", "grpc_port = 0", "enrol_port = 0",
              f'data_dir = "{tmp}/gw"']
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("secret", [None, "", "change-me-in-production-please",
                                    "generate-with: python -c 'import secrets; print(secrets.token_urlsafe(48))'",
                                    "short-but-random-Zq0"])
def test_serve_refuses_a_missing_or_placeholder_secret_key(tmp_path: Path, secret: str | None) -> None:
    done = _serve(_toml(tmp_path / "c.toml", secret=secret, relay_port=0, tmp=tmp_path))
    assert done.returncode == 2, done.stderr
    assert "secret_key" in done.stderr and "token_urlsafe" in done.stderr  # says what to set, and how
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "gw").exists()  # refused before anything started


def test_serve_refuses_a_relay_port_something_else_listens_on(tmp_path: Path) -> None:
    with socket.socket() as sshd_like:  # stands for the host's sshd on 22
        sshd_like.bind(("0.0.0.0", 0))
        sshd_like.listen()
        busy = sshd_like.getsockname()[1]
        done = _serve(_toml(tmp_path / "c.toml", secret=GOOD_KEY, relay_port=busy, tmp=tmp_path))
    assert done.returncode == 2, done.stderr
    assert f"[gateway] relay_port = {busy} cannot be used" in done.stderr
    assert "another process already listens" in done.stderr and "set [gateway] relay_port to a free port" in done.stderr


def test_relay_port_22_names_the_ssh_server() -> None:
    s = Settings(portal=PortalSettings(secret_key=GOOD_KEY))  # type: ignore[arg-type]
    s = s.model_copy(update={"gateway": s.gateway.model_copy(update={"relay_port": 22})})
    with pytest.raises(ConfigError, match="SSH server usually listens there"):
        check_ports(s, probe=lambda host, port: "another process already listens" if port == 22 else None)


def test_two_settings_on_one_port_are_refused() -> None:
    s = Settings()
    s = s.model_copy(update={"gateway": s.gateway.model_copy(update={"proxy_port": s.portal.port})})
    with pytest.raises(ConfigError, match="are both 8400"):
        check_ports(s, probe=lambda host, port: None)


def test_secret_key_file_is_made_once_private_and_kept(tmp_path: Path) -> None:
    portal = PortalSettings(secret_key_file=tmp_path / "sub" / "key")
    first = resolve_secret_key(portal).secret_key.get_secret_value()
    again = resolve_secret_key(portal).secret_key.get_secret_value()
    assert first == again and len(first) >= 48
    assert stat.S_IMODE((tmp_path / "sub" / "key").stat().st_mode) == 0o600


def test_the_cloud_example_passes_serves_checks_as_it_stands(tmp_path: Path) -> None:
    s = Settings.load(DEPLOY / "printgate.toml")
    assert s.gateway.relay_port != 22
    assert s.portal.secret_key_file is not None
    local = s.model_copy(update={"portal": s.portal.model_copy(update={"secret_key_file": tmp_path / "key"})})
    ports = [p for _, _, p in listening_ports(s)]
    assert len(ports) == len(set(ports))
    check_ports(local, probe=lambda host, port: None)  # this test host's own ports are not the example's business
    assert resolve_secret_key(local.portal).secret_key.get_secret_value()
    assert checked_for_serving  # the function serve calls


def test_the_agent_example_loads_with_bounded_queue_and_stop_deadline() -> None:
    a = Settings.load(DEPLOY / "agent.toml").agent
    assert a.targets and a.queue_max_readings > 0 and a.queue_max_bytes > 0 and a.stop_deadline_seconds == 10.0
