"""The tester's relay floods (issue 12 follow-up, item 3), with real clients from loopback addresses:
failed SSH logins were audited one record each (with the attacker's username in the details),
and refused connections one record per source and window with no bound on the sources
(300 sources x 3 windows -> 900 records)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import asyncssh
import pytest

from gateway.firewall import InProcessFirewall
from gateway.relay import Relay, RelayLimits
from gateway.relay.admission import AdmissionControl, AdmissionLimits
from printgate.testing.audit import RecordingAuditSink

pytestmark = pytest.mark.timeout(120)


@contextlib.asynccontextmanager
async def relay_with(tmp_path: Path, allowed: list[str], **limits: float) -> AsyncIterator[tuple[Relay, RecordingAuditSink]]:
    audit, firewall = RecordingAuditSink(), InProcessFirewall()
    relay = Relay("127.0.0.1", 0, host_key_path=tmp_path / "host_key", ca_key_path=tmp_path / "ca_key",
                  audit=audit, firewall=firewall, limits=RelayLimits(**limits), tick_s=0.2)  # type: ignore[arg-type]
    async with relay:
        for i, src in enumerate(allowed):
            await firewall.allow(f"src{i}-agent", src, relay.port, 300)
        yield relay, audit


async def _failed_login(port: int, source: str, username: str) -> None:
    key = asyncssh.generate_private_key("ssh-ed25519")
    with contextlib.suppress(asyncssh.PermissionDenied):
        conn = await asyncio.wait_for(asyncssh.connect(
            "127.0.0.1", port, local_addr=(source, 0), username=username, known_hosts=None, config=None,
            gss_host=None, agent_path=None, client_keys=[key], password=None, kbdint_auth=False), 10)
        conn.close()
        raise AssertionError("a bare key was accepted")


async def test_failed_logins_are_audited_per_source_and_window(tmp_path: Path) -> None:
    attacker = "127.0.0.55"
    names = [f"firstname.lastname{i}@example.org" + "x" * 200 for i in range(30)]
    async with relay_with(tmp_path, [attacker], source_window_s=60.0, connections_per_source=1000) as (relay, audit):
        for name in names:
            await _failed_login(relay.port, attacker, name)
        await audit.wait_for("relay.auth.failed")
    records = audit.of("relay.auth.failed")
    assert len(records) == 2  # the first at once, the other 29 in the window's record
    assert sum(int(r.details["count"]) for r in records) == 30  # type: ignore[call-overload]
    assert all(r.source_ip == attacker for r in records)
    for r in records:  # the names tried are personal data: never in the details, and cut short
        assert not any("firstname" in str(v) for v in r.details.values())
        assert r.personal and all(len(n) <= 32 for v in r.personal.values() for n in v.split(", "))
    assert len(records[1].personal["usernames"].split(", ")) <= 5


def _refused_connection(port: int, source: str) -> None:
    with socket.socket() as s:
        s.bind((source, 0))
        s.settimeout(2)
        with contextlib.suppress(OSError):
            s.connect(("127.0.0.1", port))
            s.recv(10)


async def test_refused_connections_from_many_sources_are_audited_in_bounded_records(tmp_path: Path) -> None:
    sources = [f"127.0.{100 + i // 250}.{1 + i % 250}" for i in range(300)]
    async with relay_with(tmp_path, [], source_window_s=60.0) as (relay, audit):  # no firewall exception
        for _ in range(2):
            for src in sources:
                await asyncio.to_thread(_refused_connection, relay.port, src)
    records = audit.of("relay.connections.refused")
    assert sum(int(r.details["refused"]) for r in records) == 600  # type: ignore[call-overload]
    assert len(records) == 11  # the ten sources refused most, and "290 other sources"
    (other,) = [r for r in records if r.source_ip is None]
    assert other.details["other_sources"] == 290


def test_sources_beyond_the_cap_share_one_window() -> None:
    control = AdmissionControl(AdmissionLimits(100, 100, 3, 60.0), max_sources=5)
    refused = [control.check(f"10.0.0.{i}", 0.0, firewall_allows=True, unauthenticated=0,
                             unauthenticated_from_source=0) for i in range(20)]
    assert refused[:8] == [None] * 8  # 5 own windows, then 3 admitted in the shared one
    assert set(refused[8:]) == {"rate"}  # the spray beyond the cap is rate limited together
    windows = control.drain()
    assert len(windows) == 1 and windows[0].source == "*"
    assert (windows[0].admitted, windows[0].refused_total) == (3, 12)
    assert len(windows[0].sources) == 5  # the sample of sources is bounded too
