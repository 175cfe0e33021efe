"""The relay across relay-CA and host key rotations: real relay, the agent's tunnel client (asyncssh)
and OpenSSH's ssh client, a lab web server behind the tunnel."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from aiohttp import web

from agent.errors import RELAY_AUTH_REFUSED, RELAY_HOST_KEY_MISMATCH
from agent.tunnel import open_tunnel
from gateway.firewall import InProcessFirewall
from gateway.relay import Relay, SessionCredential
from lab.sites import serve
from printgate.domain import DwaTarget
from printgate.errors import TunnelError
from printgate.keys import FileKeyStore
from printgate.testing.audit import RecordingAuditSink

pytestmark = pytest.mark.timeout(60)
HOUR = timedelta(hours=1)


@pytest.fixture
async def ews() -> AsyncIterator[DwaTarget]:
    async def page(_r: web.Request) -> web.Response:
        return web.Response(text="printer status: ready")

    app = web.Application()
    app.router.add_get("/", page)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = await serve(runner)
    yield DwaTarget("127.0.0.1", port, "http")
    await runner.cleanup()


@pytest.fixture
async def relay(tmp_path: Path) -> AsyncIterator[tuple[Relay, FileKeyStore]]:
    store = FileKeyStore(tmp_path / "keys")
    firewall = InProcessFirewall()
    r = Relay("127.0.0.1", 0, host_key_path=store.path("relay-host-key"), ca_key_path=store.path("relay-ca"),
              keys=store, audit=RecordingAuditSink(), firewall=firewall)
    async with r:
        await firewall.allow("the-agent", "127.0.0.1", r.port, 600)  # the sessions' agent address
        yield r, store
    await firewall.aclose()


async def _page_through(relay: Relay, sid: str, cred: SessionCredential, target: DwaTarget,
                        fingerprints: list[str]) -> str:
    tunnel = await open_tunnel("127.0.0.1", relay.port, host_key_fingerprint=fingerprints,
                               credential_private_key=cred.private_key, credential_certificate=cred.certificate,
                               session_id=sid, target=target, verify=None)
    try:
        host, port = await relay.wait_forward(sid, timeout=5)
        async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as client:
            return (await client.get("/")).text
    finally:
        await tunnel.aclose()
        for _ in range(100):  # the relay notices the closed connection (next connection of the session)
            if not relay.is_connected(sid):
                break
            await asyncio.sleep(0.02)


def _session(relay: Relay) -> tuple[str, SessionCredential]:
    sid = f"s{uuid.uuid4().hex[:10]}"
    return sid, relay.issue_credential(sid, valid_seconds=600, agent_id="a1")


async def test_certificates_of_the_old_relay_ca_work_until_the_overlap_ends(
    relay: tuple[Relay, FileKeyStore], ews: DwaTarget
) -> None:
    r, store = relay
    fp = [r.host_key_fingerprint]
    sid_old, cred_old = _session(r)
    assert "ready" in await _page_through(r, sid_old, cred_old, ews, fp)  # before

    rotation = store.rotate("relay-ca", overlap=HOUR)
    r.refresh_keys(force=True)
    sid_new, cred_new = _session(r)
    assert rotation.new.public.split()[1] in r.ca_public_key  # new sessions: certificates of the new CA
    assert "ready" in await _page_through(r, sid_old, cred_old, ews, fp)  # during: the old CA's certificate
    assert "ready" in await _page_through(r, sid_new, cred_new, ews, fp)

    store.end_overlap("relay-ca")
    r.refresh_keys(force=True)
    with pytest.raises(TunnelError) as refused:  # after: the old CA is no longer trusted
        await _page_through(r, sid_old, cred_old, ews, fp)
    assert refused.value.code == RELAY_AUTH_REFUSED
    assert "ready" in await _page_through(r, sid_new, cred_new, ews, fp)


async def test_a_new_host_key_is_served_and_accepted_by_agents_that_trust_the_set(
    relay: tuple[Relay, FileKeyStore], ews: DwaTarget, tmp_path: Path
) -> None:
    r, store = relay
    old_fp = r.host_key_fingerprint
    old_line = r.host_public_key
    rotation = store.rotate("relay-host-key", overlap=HOUR)
    r.refresh_keys(force=True)
    assert r.host_key_fingerprint == rotation.new.fingerprint != old_fp
    sid, cred = _session(r)
    with pytest.raises(TunnelError) as pinned_old:  # an agent still pinning only the old key refuses the relay
        await _page_through(r, sid, cred, ews, [old_fp])
    assert pinned_old.value.code == RELAY_HOST_KEY_MISMATCH
    assert "ready" in await _page_through(r, sid, cred, ews, [old_fp, rotation.new.fingerprint])

    # OpenSSH sees the same: the new key is served, a known_hosts with only the old one fails
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{r.port} {old_line}\n")
    probe = ["ssh", "-F", "/dev/null", "-o", "BatchMode=yes", "-o", "IdentityAgent=none", "-o", "IdentitiesOnly=yes",
             "-o", f"UserKnownHostsFile={known}", "-o", "StrictHostKeyChecking=yes",
             "-o", "HostKeyAlgorithms=ssh-ed25519", "-p", str(r.port), "nobody@127.0.0.1", "true"]
    code, err = await _ssh(probe)
    assert code != 0 and "REMOTE HOST IDENTIFICATION HAS CHANGED" in err, err
    known.write_text(f"[127.0.0.1]:{r.port} {r.host_public_key}\n")
    code, err = await _ssh(probe)
    assert code != 0 and "Permission denied" in err, err  # host key accepted; no credential for the login


async def _ssh(argv: list[str]) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _, err = await asyncio.wait_for(proc.communicate(), 20)
    return proc.returncode or 0, err.decode()
