"""A network cut between agent and relay does not end the session: the agent reconnects,
the relay binds the session's port again, and the technician's next page load works.
A cut that sends no reset (a Wi-Fi drop) is noticed by keepalives on both sides."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from lab.catalog import PRINTERS, by_name
from printgate.cli.demo_system import DemoSystem
from printgate.domain import AuditRecord, DwaSession
from tests.e2e.conftest import session_cookie

PRINTER = by_name("ricoh_mpc3002")


def cut_relay_connections(relay_port: int) -> int:
    """Abort every established TCP connection to or from the relay port, both ends (``ss -K``)."""
    out = subprocess.run(
        ["ss", "-K", "-tnH", "state", "established", f"( dport = :{relay_port} or sport = :{relay_port} )"],
        check=True, capture_output=True, text=True,
    ).stdout
    return len(out.splitlines())


async def page(client: httpx.AsyncClient, launch: str, cookie: str | None = None) -> httpx.Response:
    """The launch link without ``cookie``, else the device's home page with it."""
    parts = urlsplit(launch)
    local = f"http://127.0.0.1:{parts.port}"
    if cookie is None:
        return await client.get(f"{local}{parts.path}?{parts.query}", headers={"Host": parts.netloc})
    return await client.get(f"{local}/", headers={"Host": parts.netloc, "Cookie": cookie})


async def until_page_works(client: httpx.AsyncClient, launch: str, cookie: str, *, timeout: float) -> None:
    """Reload the device's home page until it comes through again."""
    async with asyncio.timeout(timeout):
        while True:
            again = await page(client, launch, cookie)
            if again.status_code == 200 and PRINTER.name in again.text:
                return
            await asyncio.sleep(0.3)


async def enter_session(system: DemoSystem, client: httpx.AsyncClient) -> tuple[str, DwaSession, str]:
    """Open a session on the printer as the demo technician and enter it: (launch URL, session, cookie)."""
    launch = await system.open_session_as_demo_user(PRINTER.ip)
    (session,) = system.cloud.broker.live_sessions_of("user-demo-tech")
    first = await page(client, launch)
    assert first.status_code == 200
    cookie = session_cookie(first)
    assert PRINTER.name in (await page(client, launch, cookie)).text
    return launch, session, cookie


async def forwards_of(system: DemoSystem, session_id: str) -> list[AuditRecord]:
    """The relay's ``relay.forward.opened`` records of one session, in order."""
    return [e for e in await system.audit_events()
            if e.type == "relay.forward.opened" and e.session_id == session_id]


async def test_agent_reconnects_after_a_network_cut_and_the_session_keeps_working(system: DemoSystem) -> None:
    async with httpx.AsyncClient(timeout=30) as client:
        launch, session, cookie = await enter_session(system, client)
        assert cut_relay_connections(system.cloud.relay.port) >= 1
        await until_page_works(client, launch, cookie, timeout=30)  # reconnect backoff starts at 0.2 s
        assert system.cloud.broker.live_sessions_of("user-demo-tech") == [session]

        kinds = [e.type for e in await system.audit_events() if e.session_id == session.id]
        assert "relay.tunnel.closed" in kinds
        forwards = await forwards_of(system, session.id)
        assert [f.details["reconnected"] for f in forwards] == [False, True]
        assert forwards[0].details["listener"] == forwards[1].details["listener"]  # the proxy's route holds

        await system.close_all_sessions(reason="test done")
    # a new connection: the proxy closes the ended session's live ones, a reused one may be cut mid-request
    async with httpx.AsyncClient(timeout=30) as fresh:
        ended = await page(fresh, launch, cookie)
        assert ended.status_code in (403, 404, 410)
    # closed on command: the agent does not come back
    await asyncio.sleep(1.0)
    assert session.id not in system.cloud.relay.live_session_ids()
    assert session.id not in system.runtime.tunnel_sessions


async def test_tunnel_the_relay_ends_is_not_reconnected(system: DemoSystem) -> None:
    await system.open_session_as_demo_user(PRINTER.ip)
    (session,) = system.cloud.broker.live_sessions_of("user-demo-tech")
    assert session.id in system.runtime.tunnel_sessions
    # the relay ends the session (SSH disconnect) and the close command never reaches the agent
    await system.cloud.relay.end_session(session.id, "revoked by the test")
    async with asyncio.timeout(10):
        while session.id in system.runtime.tunnel_sessions:
            await asyncio.sleep(0.1)
    await asyncio.sleep(1.0)  # longer than the first retry delays
    assert not [e for e in await system.audit_events()
                if e.type == "relay.auth.failed" and e.details.get("username") == session.id]
    await system.close_all_sessions(reason="test done")


async def test_agent_stops_reconnecting_once_the_relay_refuses_the_ended_sessions_credential(
    system: DemoSystem,
) -> None:
    await system.open_session_as_demo_user(PRINTER.ip)
    try:
        (session,) = system.cloud.broker.live_sessions_of("user-demo-tech")
        # the connection is lost, and the session ends before the agent is back
        cut_relay_connections(system.cloud.relay.port)
        await system.cloud.relay.end_session(session.id, "revoked by the test")
        async with asyncio.timeout(15):
            while session.id in system.runtime.tunnel_sessions:
                await asyncio.sleep(0.1)
        # the agent gives up on the refusal it receives; the relay's audit record of it may be
        # committed a moment later (PostgreSQL under a parallel suite)
        deadline = time.monotonic() + 10
        while True:
            refused = [e for e in await system.audit_events()
                       if e.type == "relay.auth.failed" and e.details.get("username") == session.id]
            if refused or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
        assert refused, "the agent did not try its revoked credential again"
    finally:  # the next test opens a session on the same device (one session per device)
        await system.close_all_sessions(reason="test done")


async def test_gateway_resume_crossing_the_agents_own_reconnect_keeps_the_session(system: DemoSystem) -> None:
    async with httpx.AsyncClient(timeout=30) as client:
        launch, session, cookie = await enter_session(system, client)
        cut_relay_connections(system.cloud.relay.port)
        while system.cloud.relay.is_connected(session.id):  # the relay has seen the loss
            await asyncio.sleep(0.005)
        # the gateway asks for the tunnel again while the agent is already reconnecting it
        assert await system.cloud.broker.resume_tunnels(session.agent_id) == 1
        await until_page_works(client, launch, cookie, timeout=30)
        await asyncio.sleep(1.0)
        assert system.cloud.broker.live_sessions_of("user-demo-tech") == [session]
        assert (await page(client, launch, cookie)).status_code == 200
    assert system.runtime.tunnel_sessions == [session.id]
    await system.close_all_sessions(reason="test done")


@contextlib.contextmanager
def packets_dropped(port: int) -> Iterator[None]:
    """Silently drop every packet to or from ``port`` on this host (nftables, no reset sent)."""
    if os.geteuid() != 0:
        if os.environ.get("CI"):
            raise RuntimeError("CI runs as root: the silent-drop test must not be skipped")
        pytest.skip("needs root for nftables")
    table = f"pgdrop_{uuid.uuid4().hex[:8]}"
    rules = (f"table inet {table} {{\n chain out {{\n  type filter hook output priority 0; policy accept;\n"
             f"  tcp dport {port} drop\n  tcp sport {port} drop\n }}\n}}\n")
    subprocess.run(["nft", "-f", "-"], input=rules, text=True, check=True)
    try:
        yield
    finally:
        subprocess.run(["nft", "delete", "table", "inet", table], check=True)


async def test_silent_network_loss_is_noticed_by_keepalives_and_the_session_recovers(tmp_path: Path) -> None:
    fast = {"relay_keepalive_seconds": 1.0}
    async with DemoSystem(tmp_path, log_level="warning", gateway_overrides=fast,
                          agent_overrides={"tunnel_keepalive_seconds": 1.0}) as system:
        await system.wait_for_devices(minimum=len(PRINTERS), timeout=90)
        async with httpx.AsyncClient(timeout=30) as client:
            launch, session, cookie = await enter_session(system, client)
            with packets_dropped(system.cloud.relay.port):
                async with asyncio.timeout(20):  # 3 missed keepalives of 1 s, on the relay's side
                    while not any(e.type == "relay.tunnel.closed" and e.session_id == session.id
                                  for e in await system.audit_events()):
                        await asyncio.sleep(0.2)
            # the agent's next attempt once the network is back
            await until_page_works(client, launch, cookie, timeout=40)
        assert [f.details["reconnected"] for f in await forwards_of(system, session.id)] == [False, True]
        await system.close_all_sessions(reason="test done")


async def test_sessions_resume_when_the_agent_restarts_within_the_grace_period(tmp_path: Path) -> None:
    from agent.service import AgentAssembly

    async with DemoSystem(tmp_path, log_level="warning") as system:
        await system.wait_for_devices(minimum=len(PRINTERS), timeout=90)
        async with httpx.AsyncClient(timeout=30) as client:
            launch, session, cookie = await enter_session(system, client)
            await system.agent.aclose()  # an update restarts the agent: its tunnels go with it
            assert (await page(client, launch, cookie)).status_code == 502
            restarted = AgentAssembly(system.agent_settings(system.base_dir / "agent"), system.agent.identity)
            async with restarted:
                await until_page_works(client, launch, cookie, timeout=30)
                assert system.cloud.broker.live_sessions_of("user-demo-tech") == [session]
                assert any(e.type == "agent.command.sent" and e.session_id == session.id
                           and e.details.get("reason") == "agent reconnected"
                           for e in await system.audit_events())
                forwards = await forwards_of(system, session.id)
                assert [f.details["reconnected"] for f in forwards] == [False, True]
                await system.close_all_sessions(reason="test done")
