"""A printer's web page survives a failed probe; "no web page" says what was tried and how it failed.

The agent's own sweep (``AgentRuntime.scan_once`` with the production ``probe_ews``) probes a
real HTTP server on a loopback address; the server is stopped for one sweep and back for the
next. Each sweep's inventory goes through the gateway's inventory rule
(``AgentEvents.on_inventory``) on a real store (both backends), so the device's web port is what
the cloud keeps. Only several failed sweeps in a row over time give the page up; then the cloud
keeps each port tried and how it failed, and the policy's refusal names them (issue 13
follow-up, items 1 and 2).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Sequence
from functools import partial

import pytest
import sqlalchemy as sa
from structlog.testing import capture_logs

from agent.ews_probe import EwsEndpoint, EwsHysteresis, EwsNotFound, probe_ews
from agent.runtime import AgentRuntime
from gateway.agent_events import AgentEvents
from policy import Action, default_ruleset, evaluate, load_policy
from printgate.domain import DeviceIdentity, DiscoveryResult, DiscoveryStatus, SiteId
from printgate.store import devices
from printgate.store.db import Database
from printgate.store.models.core import DeviceRow
from printgate.testing.audit import RecordingAuditSink
from printgate.testing.tenancy import Tenancy
from printgate.wire import agent_pb2 as pb
from tests.fleet.test_device_identity import Nobody
from tests.unit.policy.conftest import make_context, make_resource, make_subject

AGENT, SITE = "agent-1", SiteId("site-1")
IP = "127.0.41.7"
PRINTER = DiscoveryResult(IP, DiscoveryStatus.PRINTER, "v2c:public",
                          DeviceIdentity(serial="CNB9X01234", mac="00:1b:a9:01:02:03", model="HP LaserJet M130nw"))


def free_port(ip: str) -> int:
    with socket.socket() as s:
        s.bind((ip, 0))
        return int(s.getsockname()[1])


class WebPage:
    """A real HTTP server on ``ip:port`` that the test stops and starts again."""

    def __init__(self, ip: str, port: int) -> None:
        self.ip, self.port = ip, port
        self._server: asyncio.Server | None = None

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            await reader.read(1 << 16)  # a request (or a TLS ClientHello) -> an HTTP answer
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            await writer.drain()
        writer.close()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._answer, self.ip, self.port, reuse_address=True)

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
        self._server = None


class Inventories:
    """The agent's channel as far as a sweep needs it: every uploaded inventory."""

    state = "connected"

    def __init__(self) -> None:
        self.sent: list[list[pb.DiscoveredDevice]] = []

    async def upload_inventory(self, devices: Sequence[pb.DiscoveredDevice]) -> None:
        self.sent.append(list(devices))


async def _sweep() -> list[DiscoveryResult]:
    return [PRINTER]


async def _no_tunnel(*_a: object) -> None:
    raise AssertionError("no tunnel in this test")


@pytest.fixture
async def events(db: Database) -> AsyncIterator[AgentEvents]:
    await Tenancy().chain(dealer="dealer-1", customer="cust-1", site=SITE, agent=AGENT).save(db)
    ev = AgentEvents(db=db, audit=RecordingAuditSink(), sessions=Nobody(), presence=Nobody(), loss_grace_s=60)  # type: ignore[arg-type]
    yield ev
    await ev.aclose()


async def test_one_failed_probe_keeps_the_web_page_several_over_time_give_it_up(events: AgentEvents, db: Database) -> None:
    port = free_port(IP)
    page = WebPage(IP, port)
    now = [1000.0]
    channel = Inventories()
    runtime = AgentRuntime(
        channel=channel, discover=_sweep, open_tunnel=_no_tunnel,  # type: ignore[arg-type]
        find_ews_endpoint=partial(probe_ews, candidates=[(port, "http")], timeout=1.0),
        ews_hysteresis=EwsHysteresis(misses=3, min_span_s=600, clock=lambda: now[0]),
    )

    async def sweep(minutes_later: float) -> tuple[int, str]:
        now[0] += minutes_later * 60
        [entry] = await runtime.scan_once()
        await events.on_inventory(AGENT, [entry])
        async with db.session() as s:
            [row] = list((await s.scalars(sa.select(DeviceRow))).all())
        assert (row.ews_port, row.ews_scheme) == (entry.ews_port, entry.ews_scheme or row.ews_scheme)
        return row.ews_port, row.ews_scheme

    await page.start()
    assert await sweep(0) == (port, "http")
    await page.stop()
    with capture_logs() as logged:
        assert await sweep(5) == (port, "http")  # one failed probe: the page is kept
    [kept] = [e for e in logged if e["event"] == "agent.ews_probe_failed"]
    assert kept["tried"] == f"{port}/http refused" and kept["misses"] == 1
    await page.start()  # back for the next sweep
    assert await sweep(5) == (port, "http")
    await page.stop()
    assert await sweep(5) == (port, "http")  # the count started again: 1 miss
    assert await sweep(5) == (port, "http")  # 2 misses
    assert await sweep(0.1) == (port, "http")  # 3 misses, but within minutes of the first: kept
    with capture_logs() as logged:
        assert await sweep(5) == (0, "")  # failed for good: 4 sweeps over 15 minutes
    [gone] = [e for e in logged if e["event"] == "agent.ews_not_found"]
    assert gone["tried"] == f"{port}/http refused" and "ews_candidates" in gone["hint"]
    # the cloud keeps how each port failed; "Open web page" is refused naming it
    async with db.session() as s:
        [row] = list((await s.scalars(sa.select(DeviceRow))).all())
        device = await devices.get_device(s, row.id)
    assert device is not None and device.ews_probe == f"{port}/http refused"
    decision = evaluate(load_policy(default_ruleset("d1")), make_subject(), Action.DWA_OPEN,
                        make_resource(device), make_context())
    [why] = [r for r in decision.reasons if r.code == "device.no_web_page"]
    assert not decision.allow and f"the agent tried {port}/http refused" in why.message
    await page.start()
    assert await sweep(5) == (port, "http")  # it answers again: reported at once
    async with db.session() as s:
        assert (await s.scalars(sa.select(DeviceRow.ews_probe))).one() == ""


async def test_another_device_at_the_address_does_not_inherit_the_web_page() -> None:
    memory = EwsHysteresis(misses=3, min_span_s=0, clock=lambda: 0.0)
    good = EwsEndpoint(80, "http")
    assert memory.observe(EwsHysteresis.key(IP, "SERIAL-A"), good) == good
    assert memory.observe(EwsHysteresis.key(IP, "SERIAL-A"), EwsNotFound(())) == good
    assert memory.observe(EwsHysteresis.key(IP, "SERIAL-B"), EwsNotFound(())) is None


async def _tls_never_answers(done: asyncio.Event, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        await reader.read(1 << 16)  # takes the ClientHello, never answers
        await done.wait()
    writer.close()


async def test_no_web_page_says_each_port_and_how_it_failed() -> None:
    refused = free_port(IP)
    plain = WebPage(IP, free_port(IP))  # HTTP where HTTPS was expected: a TLS error
    await plain.start()
    done = asyncio.Event()
    mute = await asyncio.start_server(partial(_tls_never_answers, done), IP, 0)
    mute_port = mute.sockets[0].getsockname()[1]
    try:
        found = await probe_ews(IP, [(refused, "https"), (plain.port, "https"), (mute_port, "https")], timeout=1.0)
    finally:
        await plain.stop()
        done.set()
        mute.close()
        await mute.wait_closed()
    assert isinstance(found, EwsNotFound)
    by_port = {a.port: a.failure for a in found.tried}
    assert by_port[refused] == "refused"
    assert by_port[plain.port].startswith("TLS error") and "WRONG_VERSION_NUMBER" in by_port[plain.port].upper()
    assert by_port[mute_port] == "TLS error: no handshake within 1 s"
    text = found.describe()
    assert f"{refused}/https refused" in text and f"{mute_port}/https TLS error" in text
