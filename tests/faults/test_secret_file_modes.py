"""The cloud's secret files: made private (directory 0700, file 0600, whatever the umask), and
`printgate serve` (a real process) refuses to start on one that group or others may read, saying
which chmod to run, and leaves the file as it was."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.channel.ca import AgentCA
from printgate.cli.serve_checks import resolve_secret_key
from printgate.errors import ConfigError
from printgate.settings import PortalSettings

PRINTGATE = str(Path(sys.executable).with_name("printgate"))


def _config(tmp: Path, key_file: Path) -> Path:
    path = tmp / "printgate.toml"
    path.write_text("\n".join([
        f'database_url = "sqlite+aiosqlite:///{tmp}/p.db"',
        "[portal]", "port = 0", f'secret_key_file = "{key_file}"',
        "[gateway]", "relay_port = 0", "proxy_port = 0", "grpc_port = 0", "enrol_port = 0",
        f'data_dir = "{tmp}/gw"']) + "\n")
    return path


def _serve(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PRINTGATE, "serve", "--config", str(config)], capture_output=True, text=True,
                          timeout=120)


def test_a_new_secret_key_file_is_private_whatever_the_umask(tmp_path: Path) -> None:
    key_file = tmp_path / "etc" / "printgate" / "secret_key"
    old = os.umask(0)
    try:
        resolve_secret_key(PortalSettings(secret_key_file=key_file))
    finally:
        os.umask(old)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    for made in (key_file.parent, key_file.parent.parent):
        assert stat.S_IMODE(made.stat().st_mode) == 0o700, made


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_serve_refuses_a_secret_key_file_others_may_read(tmp_path: Path, mode: int) -> None:
    key_file = tmp_path / "secret_key"
    key_file.write_text("Zq0-9_x" * 8 + "\n")
    key_file.chmod(mode)
    done = _serve(_config(tmp_path, key_file))
    assert done.returncode == 2, done.stderr[-2000:]
    assert f"chmod 600 {key_file}" in done.stderr and f"{mode:04o}" in done.stderr, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    assert stat.S_IMODE(key_file.stat().st_mode) == mode and key_file.read_text() == "Zq0-9_x" * 8 + "\n"


def test_serve_refuses_a_gateway_private_key_others_may_read(tmp_path: Path) -> None:
    ca_dir = tmp_path / "gw" / "agent-ca"
    AgentCA.load_or_create(ca_dir)
    assert stat.S_IMODE(ca_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((ca_dir / "agent-ca.key").stat().st_mode) == 0o600
    (ca_dir / "agent-ca.key").chmod(0o644)
    done = _serve(_config(tmp_path, tmp_path / "secret_key"))
    assert done.returncode == 2, done.stderr[-2000:]
    assert f"chmod 600 {ca_dir / 'agent-ca.key'}" in done.stderr, done.stderr[-2000:]
    with pytest.raises(ConfigError, match="open to other users"):  # and the CA itself refuses to load it
        AgentCA.load_or_create(ca_dir)
