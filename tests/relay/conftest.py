"""Relay fixtures: one relay, one lab web server (the "device EWS"), OpenSSH client files."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web

from gateway.firewall import InProcessFirewall
from gateway.relay import Relay, RelayLimits, SessionCredential
from lab.sites import serve
from printgate.domain import DwaTarget
from printgate.testing.audit import RecordingAuditSink

BIG = os.urandom(100 * 1024)


@dataclass
class Ews:
    host: str
    port: int

    @property
    def target(self) -> DwaTarget:
        return DwaTarget(self.host, self.port, "http")


@pytest.fixture(scope="session")
async def ews() -> AsyncIterator[Ews]:
    async def small(_r: web.Request) -> web.Response:
        return web.Response(text="<html>printer status: ready</html>", content_type="text/html")

    async def big(_r: web.Request) -> web.Response:
        return web.Response(body=BIG, content_type="application/octet-stream")

    app = web.Application()
    app.router.add_get("/", small)
    app.router.add_get("/big", big)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = await serve(runner)
    yield Ews("127.0.0.1", port)
    await runner.cleanup()


@dataclass
class RelayEnv:
    relay: Relay
    firewall: InProcessFirewall
    audit: RecordingAuditSink
    tmp: Path

    async def new_session(self, *, valid_seconds: int = 300, agent_id: str = "agent-1",
                          admit: str | None = "127.0.0.1") -> tuple[str, SessionCredential]:
        sid = uuid.uuid4().hex[:16]
        if admit is not None:
            await self.firewall.allow(f"{sid}-agent", admit, self.relay.port, valid_seconds)
        return sid, self.relay.issue_credential(sid, valid_seconds=valid_seconds, agent_id=agent_id)

    def ssh_files(self, name: str, cred: SessionCredential) -> list[str]:
        """Write key, certificate and known_hosts; return the common OpenSSH options."""
        d = self.tmp / name
        d.mkdir(parents=True, exist_ok=True)
        key = d / "id"
        key.write_text(cred.private_key)
        key.chmod(0o600)
        (d / "id-cert.pub").write_text(cred.certificate + "\n")
        known = d / "known_hosts"
        known.write_text(f"[127.0.0.1]:{self.relay.port} {self.relay.host_public_key}\n")
        return [
            "-F", "/dev/null", "-i", str(key), "-o", f"CertificateFile={d / 'id-cert.pub'}",
            "-o", f"UserKnownHostsFile={known}", "-o", "StrictHostKeyChecking=yes",
            "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "IdentityAgent=none",
            "-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR",
        ]


@pytest.fixture(scope="session")
async def relay_env(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RelayEnv]:
    tmp = tmp_path_factory.mktemp("relay")
    audit = RecordingAuditSink()
    firewall = InProcessFirewall()
    relay = Relay("127.0.0.1", 0, host_key_path=tmp / "host_key", ca_key_path=tmp / "ca_key",
                  audit=audit, firewall=firewall, limits=RelayLimits(source_window_s=2.0))
    async with relay:  # refused connections are audited per 2 s window instead of 10 s
        yield RelayEnv(relay, firewall, audit, tmp)
    await firewall.aclose()


@pytest.fixture
async def small_relay(tmp_path: Path) -> AsyncIterator[RelayEnv]:
    """A relay with tiny limits (idle 1 s, 200 KB) for limit tests."""
    audit = RecordingAuditSink()
    firewall = InProcessFirewall()
    limits = RelayLimits(idle_timeout_s=1.0, max_bytes=200 * 1024, handshake_timeout_s=2.0)
    relay = Relay("127.0.0.1", 0, host_key_path=tmp_path / "host_key", ca_key_path=tmp_path / "ca_key",
                  audit=audit, firewall=firewall, limits=limits, tick_s=0.2)
    async with relay:
        yield RelayEnv(relay, firewall, audit, tmp_path)


def need_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI"):
            raise RuntimeError(f"{name} is required under CI (scripts/system-deps.sh installs it)")
        pytest.skip(f"{name} not installed")
    return path
