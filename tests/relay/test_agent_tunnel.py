"""The agent's tunnel client against the real relay: the one forward works, everything else fails."""

from __future__ import annotations

import asyncio
import subprocess
import time
from typing import Any

import asyncssh
import httpx
import pytest

from agent.tunnel import Tunnel, open_tunnel
from gateway.relay import SessionCredential, SshCertificateAuthority
from printgate.errors import IdentityMismatch, SessionGone, TunnelError
from tests.relay.conftest import BIG, Ews, RelayEnv

pytestmark = pytest.mark.timeout(60)


async def tunnel_for(env: RelayEnv, sid: str, cred: SessionCredential, ews: Ews, **kw: Any) -> Tunnel:
    args: dict[str, Any] = dict(
        host_key_fingerprint=env.relay.host_key_fingerprint,
        credential_private_key=cred.private_key,
        credential_certificate=cred.certificate,
        session_id=sid,
        target=ews.target,
        verify=None,
    )
    args.update(kw)
    return await open_tunnel("127.0.0.1", env.relay.port, **args)


def listening_ports() -> set[int]:
    out = subprocess.run(["ss", "-Hltn"], capture_output=True, text=True, check=True).stdout
    return {int(line.split()[3].rsplit(":", 1)[1]) for line in out.splitlines() if line.strip()}


async def test_agent_tunnel_serves_small_and_100k_pages_concurrently(relay_env: RelayEnv, ews: Ews) -> None:
    sid, cred = await relay_env.new_session()
    tunnel = await tunnel_for(relay_env, sid, cred, ews)
    try:
        host, port = await relay_env.relay.wait_forward(sid, timeout=5)
        async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as client:
            pages = await asyncio.gather(*(client.get("/big" if i % 2 else "/") for i in range(20)))
        assert all(p.status_code == 200 for p in pages)
        assert all(p.content == BIG for p in pages[1::2])
        assert "printer status" in pages[0].text
    finally:
        await tunnel.aclose()
        await relay_env.relay.end_session(sid, "test over")


async def test_verify_runs_before_open_and_for_every_connection(relay_env: RelayEnv, ews: Ews) -> None:
    calls: list[float] = []
    allow = True

    async def verify() -> None:
        calls.append(time.monotonic())
        if not allow:
            raise IdentityMismatch("the device at 127.0.0.1 is no longer printer CN4711")

    sid, cred = await relay_env.new_session()
    tunnel = await tunnel_for(relay_env, sid, cred, ews, verify=verify)
    try:
        assert len(calls) == 1
        host, port = await relay_env.relay.wait_forward(sid, timeout=5)
        async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as client:
            assert (await client.get("/", headers={"Connection": "close"})).status_code == 200
            assert (await client.get("/", headers={"Connection": "close"})).status_code == 200
        assert len(calls) == 3
        allow = False
        async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as client:
            with pytest.raises(httpx.HTTPError):
                await client.get("/")
        assert tunnel.refused_connections == 1
    finally:
        await tunnel.aclose()
        await relay_env.relay.end_session(sid, "test over")


async def test_tunnel_is_not_opened_when_device_identity_fails(relay_env: RelayEnv, ews: Ews) -> None:
    async def verify() -> None:
        raise IdentityMismatch("the device at 127.0.0.1 is no longer printer CN4711")

    sid, cred = await relay_env.new_session()
    with pytest.raises(IdentityMismatch):
        await tunnel_for(relay_env, sid, cred, ews, verify=verify)
    assert relay_env.audit.of("relay.agent.connected", sid) == []
    await relay_env.relay.end_session(sid, "test over")


async def test_agent_refuses_relay_with_wrong_host_key(relay_env: RelayEnv, ews: Ews) -> None:
    sid, cred = await relay_env.new_session()
    wrong = asyncssh.generate_private_key("ssh-ed25519").get_fingerprint("sha256")
    with pytest.raises(TunnelError) as exc:
        await tunnel_for(relay_env, sid, cred, ews, host_key_fingerprint=wrong)
    assert exc.value.code == "relay_host_key_mismatch"
    assert relay_env.audit.of("relay.agent.connected", sid) == []
    await relay_env.relay.end_session(sid, "test over")


async def test_relay_refuses_expired_certificate(relay_env: RelayEnv, ews: Ews) -> None:
    sid, _cred = await relay_env.new_session()
    expired = relay_env.relay.certificate_authority.issue(
        sid, valid_seconds=60, agent_id="agent-1", now=time.time() - 3600
    )
    with pytest.raises(TunnelError) as exc:
        await tunnel_for(relay_env, sid, expired, ews)
    assert exc.value.code == "relay_auth_refused"
    await relay_env.audit.wait_for("relay.auth.failed")
    await relay_env.relay.end_session(sid, "test over")


async def test_relay_refuses_certificate_of_another_session(relay_env: RelayEnv, ews: Ews) -> None:
    sid_a, cred_a = await relay_env.new_session()
    sid_b, _cred_b = await relay_env.new_session()
    with pytest.raises(TunnelError) as exc:
        await tunnel_for(relay_env, sid_b, cred_a, ews)
    assert exc.value.code == "relay_auth_refused"
    assert relay_env.audit.of("relay.agent.connected", sid_b) == []
    await relay_env.relay.end_session(sid_a, "test over")
    await relay_env.relay.end_session(sid_b, "test over")


async def test_relay_refuses_certificate_from_unknown_ca(relay_env: RelayEnv, ews: Ews) -> None:
    sid, _cred = await relay_env.new_session()
    rogue_ca = SshCertificateAuthority(asyncssh.generate_private_key("ssh-ed25519"))
    forged = rogue_ca.issue(sid, valid_seconds=300, agent_id="agent-1")
    with pytest.raises(TunnelError) as exc:
        await tunnel_for(relay_env, sid, forged, ews)
    assert exc.value.code == "relay_auth_refused"
    await relay_env.relay.end_session(sid, "test over")


async def test_relay_drops_source_without_firewall_exception(relay_env: RelayEnv, ews: Ews) -> None:
    await relay_env.firewall.reconcile([])  # no exception for anyone
    sid, cred = await relay_env.new_session(admit=None)
    with pytest.raises(TunnelError):
        await tunnel_for(relay_env, sid, cred, ews, connect_timeout=3)
    for _ in range(100):  # refusals are audited per source and window (2 s here), not one by one
        if any("no_firewall_exception" in e.details["by_reason"] and e.source_ip == "127.0.0.1"  # type: ignore[operator]
               for e in relay_env.audit.of("relay.connections.refused")):
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("the refused connection was not audited")
    assert relay_env.audit.of("relay.agent.connected", sid) == []
    await relay_env.relay.end_session(sid, "test over")


async def test_teardown_leaves_no_listener_and_no_usable_credential(relay_env: RelayEnv, ews: Ews) -> None:
    sid, cred = await relay_env.new_session()
    tunnel = await tunnel_for(relay_env, sid, cred, ews)
    host, port = await relay_env.relay.wait_forward(sid, timeout=5)
    assert port in listening_ports()
    async with httpx.AsyncClient() as client:
        assert (await client.get(f"http://{host}:{port}/")).status_code == 200

    await relay_env.relay.end_session(sid, "technician logged out")
    await relay_env.firewall.revoke(f"{sid}-agent")
    await asyncio.wait_for(tunnel.wait_closed(), 5)

    assert port not in listening_ports()
    assert all(r.rule_id != f"{sid}-agent" for r in relay_env.firewall.rules())
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient() as client:
            await client.get(f"http://{host}:{port}/")
    # the same credential, with the firewall re-opened, is still refused: it is revoked
    await relay_env.firewall.allow("retry-agent", "127.0.0.1", relay_env.relay.port, 30)
    try:
        with pytest.raises(TunnelError) as exc:
            await tunnel_for(relay_env, sid, cred, ews)
        assert exc.value.code == "relay_auth_refused"
        with pytest.raises(SessionGone):
            relay_env.relay.issue_credential(sid, valid_seconds=60, agent_id="agent-1")
    finally:
        await relay_env.firewall.revoke("retry-agent")
    await relay_env.audit.wait_for("relay.session.ended", sid)


async def test_idle_tunnel_is_closed(small_relay: RelayEnv, ews: Ews) -> None:
    sid, cred = await small_relay.new_session()
    tunnel = await tunnel_for(small_relay, sid, cred, ews)
    await small_relay.relay.wait_forward(sid, timeout=5)
    await asyncio.wait_for(tunnel.wait_closed(), 5)
    event = await small_relay.audit.wait_for("relay.limit.reached", sid)
    assert "idle" in str(event.details["limit"])


async def test_tunnel_over_byte_limit_is_closed(small_relay: RelayEnv, ews: Ews) -> None:
    sid, cred = await small_relay.new_session()
    tunnel = await tunnel_for(small_relay, sid, cred, ews)
    host, port = await small_relay.relay.wait_forward(sid, timeout=5)
    async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as client:
        assert (await client.get("/big")).status_code == 200
        with pytest.raises(httpx.HTTPError):
            for _ in range(3):
                await client.get("/big")
    await asyncio.wait_for(tunnel.wait_closed(), 5)
    event = await small_relay.audit.wait_for("relay.limit.reached", sid)
    assert "bytes" in str(event.details["limit"])
