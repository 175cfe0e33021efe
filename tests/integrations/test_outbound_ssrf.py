"""Syslog subscriptions follow the webhooks' public-address rule (issue 20, F1): refused when
saved and refused again when connecting, with a real TCP collector on loopback that must never
see a connection (``allow_private_webhooks`` is what lets labs and tests use loopback)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest

from alerting.delivery import Channels, validate
from alerting.engine import Alert, to_payload
from alerting.errors import DeliveryFailed, SubscriptionInvalid
from integrations.errors import IntegrationError
from integrations.syslog import SyslogTarget, SyslogTransport

AT = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


@dataclass
class Collector:
    port: int
    connections: int = 0
    lines: list[bytes] = field(default_factory=list)


@pytest.fixture
async def collector() -> AsyncIterator[Collector]:
    box = Collector(0)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        box.connections += 1
        try:
            length = await reader.readuntil(b" ")
            box.lines.append(await reader.readexactly(int(length[:-1])))
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    box.port = server.sockets[0].getsockname()[1]
    async with server:
        yield box


def payload() -> dict[str, object]:
    return to_payload(Alert(id="a1", rule="relay.refused", category="channel", severity=2, kind="alert",
                            title="The SSH relay refused connections", text="1 occurrence", dealer_id="d1",
                            customer_id=None, key="relay", subject="the SSH relay", count=1, first_seq=1,
                            last_seq=1, first_at=AT, last_at=AT, source_ip="203.0.113.9"))


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "169.254.169.254", "10.0.0.5", "[::1]",
                                  "[::ffff:127.0.0.1]", "[64:ff9b::a9fe:a9fe]", "[2002:7f00:1::1]"])
def test_a_syslog_subscription_to_an_internal_address_is_refused_when_saved(host: str) -> None:
    with pytest.raises(SubscriptionInvalid, match=r"non-public|local name"):
        validate(channel="syslog", target=f"tcp://{host}:5432")


def test_the_lab_setting_allows_loopback_collectors() -> None:
    assert validate(channel="syslog", target="tcp://127.0.0.1:514", allow_private_webhooks=True).target


async def test_delivery_to_an_internal_collector_never_connects(collector: Collector) -> None:
    channels = Channels(smtp=None, timeout=2)
    try:
        for target in (f"tcp://127.0.0.1:{collector.port}", f"tcp://localhost:{collector.port}"):
            with pytest.raises(DeliveryFailed, match=r"non-public|local name"):
                await channels.send("syslog", target, None, payload())
    finally:
        await channels.aclose()
    assert collector.connections == 0


async def test_a_name_resolving_to_loopback_is_refused_at_connect_time(collector: Collector) -> None:
    """Past the save-time check (a stored target, a name whose answer changed): the transport
    resolves, checks every address and refuses before connecting."""
    transport = SyslogTransport(SyslogTarget("localhost", collector.port, tls=False, timeout=2))
    with pytest.raises(IntegrationError, match="non-public"):
        await transport.send([b"<36>1 - - - - - - hello"])
    assert collector.connections == 0


async def test_allowed_private_and_operator_collectors_receive(collector: Collector) -> None:
    lab = Channels(smtp=None, timeout=2, allow_private_webhooks=True)
    operator = Channels(smtp=None, timeout=2, trusted_syslog=[f"tcp://127.0.0.1:{collector.port}"])
    try:
        await lab.send("syslog", f"tcp://127.0.0.1:{collector.port}", None, payload())
        await operator.send("syslog", f"tcp://127.0.0.1:{collector.port}", None, payload())
        for _ in range(100):
            if len(collector.lines) == 2:
                break
            await asyncio.sleep(0.02)
    finally:
        await lab.aclose()
        await operator.aclose()
    assert len(collector.lines) == 2 and b"CEF:0|printgate|" in collector.lines[0]


@pytest.mark.parametrize("channel", ["syslog", "webhook"])
async def test_a_name_resolving_to_an_internal_address_is_refused_when_saved(
        channel: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """validate() checks the form and literals; check_resolves_public() resolves the name (the
    portal and the CLI call both before storing)."""
    from alerting.delivery import check_resolves_public
    from integrations import addresses

    monkeypatch.setattr(addresses, "_getaddrinfo", lambda host, port: ["93.184.216.34", "10.0.0.7"])
    target = "tcp://siem.example.net:514" if channel == "syslog" else "https://siem.example.net/hook"
    sub = validate(channel=channel, target=target, secret="s" * 32)
    with pytest.raises(SubscriptionInvalid, match=r"non-public address \(10\.0\.0\.7\)"):
        await check_resolves_public(sub)
    await check_resolves_public(sub, allow_private_webhooks=True)
    monkeypatch.setattr(addresses, "_getaddrinfo", lambda host, port: ["93.184.216.34"])
    await check_resolves_public(sub)
