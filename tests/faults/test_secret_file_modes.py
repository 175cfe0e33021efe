"""The cloud's secret files: made private (directory 0700, file 0600, whatever the umask), and
`printgate serve` (a real process) refuses to start on one that group or others may read, saying
which chmod to run, and leaves the file as it was."""

from __future__ import annotations

import asyncio
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


def _make_every_key(tmp: Path) -> dict[str, Path]:
    """The cloud's private keys as its own code makes them (each private at first)."""
    from audit.checkpoint import Signer
    from gateway.proxy.public_tls import ensure_own_ca
    from gateway.relay.ssh_ca import load_or_create_key
    from printgate.vault.kms import FileKms

    gw = tmp / "gw"
    gw.mkdir(mode=0o700)
    Signer.generate().save(gw / "audit-signing.key")
    vault_key = gw / "vault-master.key"
    asyncio.run(FileKms(vault_key).key_id())
    ensure_own_ca(gw / "dwa-ca")
    load_or_create_key(gw / "relay_ssh_ca")
    load_or_create_key(gw / "relay_host_key")
    return {"the audit signing key": gw / "audit-signing.key", "the vault master key": vault_key,
            "the session CA key": gw / "dwa-ca" / "mitmproxy-ca.pem",
            "the relay CA key": gw / "relay_ssh_ca", "the relay host key": gw / "relay_host_key"}


@pytest.mark.parametrize("what", ["the audit signing key", "the vault master key", "the session CA key",
                                  "the relay CA key", "the relay host key"])
def test_serve_refuses_a_cloud_key_others_may_read(tmp_path: Path, what: str) -> None:
    keys = _make_every_key(tmp_path)
    for path in keys.values():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    exposed = keys[what]
    before = exposed.read_bytes()
    exposed.chmod(0o640)
    done = _serve(_config(tmp_path, tmp_path / "secret_key"))
    assert done.returncode == 2, done.stderr[-2000:]
    assert f"{what} {exposed} is open to other users (mode 0640)" in done.stderr, done.stderr[-2000:]
    assert f"chmod 600 {exposed}" in done.stderr and "Traceback" not in done.stderr
    assert stat.S_IMODE(exposed.stat().st_mode) == 0o640 and exposed.read_bytes() == before  # left as it was
    if what == "the vault master key":  # never "delete it": the vault cannot be opened without it
        assert "do NOT delete the key" in done.stderr
