"""Connection floods against the relay: stalled handshakes and connection rates, from real sockets.

Every attacking connection is a plain TCP socket from a loopback source
address (127.0.0.x) that never sends an SSH version string. An admitted one
hears the relay's version line and stays open; a refused one is closed before
the relay says anything. All sockets are closed by the test.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncssh
import pytest

from gateway.firewall import InProcessFirewall
from gateway.relay import Relay, RelayLimits
from printgate.testing.audit import RecordingAuditSink

pytestmark = pytest.mark.timeout(90)

Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


@contextlib.asynccontextmanager
async def relay_with(tmp_path: Path, sources: list[str], **limits: float) -> AsyncIterator[tuple[Relay, RecordingAuditSink]]:
    """A relay with ``limits``; every address in ``sources`` has a firewall exception."""
    audit, firewall = RecordingAuditSink(), InProcessFirewall()
    relay = Relay("127.0.0.1", 0, host_key_path=tmp_path / "host_key", ca_key_path=tmp_path / "ca_key",
                  audit=audit, firewall=firewall, limits=RelayLimits(**limits), tick_s=0.2)  # type: ignore[arg-type]
    async with relay:
        for i, src in enumerate(sources):
            await firewall.allow(f"src{i}-agent", src, relay.port, 300)
        yield relay, audit


async def stalled(port: int, source: str) -> Conn | None:
    """A TCP connection that sends nothing; ``None`` if it could not even be opened."""
    try:
        return await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0)), 5)
    except (OSError, TimeoutError):
        return None


async def heard_version(conn: Conn | None, linger: float = 0.5) -> bool:
    """True when the relay sent its version line (and kept the connection open ``linger`` s)."""
    if conn is None:
        return False
    reader = conn[0]
    try:
        line = await asyncio.wait_for(reader.readline(), 3)
    except (OSError, TimeoutError):
        return False
    if not line.startswith(b"SSH-2.0-"):
        return False
    if linger <= 0:
        return True
    try:  # a refused connection ends here; an admitted one stays silent, waiting for our version
        return await asyncio.wait_for(reader.read(1), linger) != b""
    except TimeoutError:
        return True
    except OSError:
        return False


async def flood(port: int, sources: list[str], batch: int = 20) -> tuple[list[Conn | None], int]:
    """One stalled connection per entry of ``sources``, opened in batches the listen backlog holds
    (each batch is answered before the next); return them and how many the relay admitted."""
    conns: list[Conn | None] = []
    admitted = 0
    for start in range(0, len(sources), batch):
        opened = await asyncio.gather(*(stalled(port, src) for src in sources[start:start + batch]))
        admitted += sum(await asyncio.gather(*(heard_version(c) for c in opened)))
        conns.extend(opened)
    return conns, admitted


async def close_all(conns: list[Conn | None]) -> None:
    for conn in conns:
        if conn is not None:
            conn[1].close()
    await asyncio.gather(*(c[1].wait_closed() for c in conns if c is not None), return_exceptions=True)


def refused_records(audit: RecordingAuditSink) -> list[dict[str, object]]:
    return [{"source": e.source_ip, **e.details} for e in audit.of("relay.connections.refused")]


async def wait_refused_total(audit: RecordingAuditSink, total: int, timeout: float = 10.0) -> list[dict[str, object]]:
    for _ in range(int(timeout / 0.1)):
        records = refused_records(audit)
        if sum(int(r["refused"]) for r in records) >= total:  # type: ignore[call-overload]
            return records
        await asyncio.sleep(0.1)
    raise AssertionError(f"refusals not audited: {refused_records(audit)}")


async def agent_connects(relay: Relay, audit: RecordingAuditSink, source: str) -> None:
    """A legitimate agent with a session certificate connects from ``source`` and is authenticated."""
    sid = uuid.uuid4().hex[:16]
    cred = relay.issue_credential(sid, valid_seconds=120, agent_id="agent-legit")
    conn = await asyncio.wait_for(asyncssh.connect(
        "127.0.0.1", relay.port, local_addr=(source, 0), username=sid, known_hosts=None, config=None,
        gss_host=None, agent_path=None,
        client_keys=[(asyncssh.import_private_key(cred.private_key), asyncssh.import_certificate(cred.certificate))],
    ), 10)
    async with conn:
        await audit.wait_for("relay.agent.connected", sid)
    await relay.end_session(sid, "test over")


async def test_stalled_handshakes_beyond_the_relay_wide_cap_are_refused(tmp_path: Path) -> None:
    sources = [f"127.0.0.{i}" for i in range(10, 30)]  # 20 sources x 11: under every per-source bound
    async with relay_with(tmp_path, [*sources, "127.0.0.1"], max_unauthenticated=32, handshake_timeout_s=30.0,
                          source_window_s=60.0) as (relay, audit):
        conns, admitted = await flood(relay.port, [src for _ in range(11) for src in sources])
        try:
            assert all(c is not None for c in conns)
            assert admitted == 32  # the other 188 were closed without a byte of SSH
        finally:
            await close_all(conns)
        for _ in range(50):  # the slots come back once the stalled peers are gone
            if relay.handshakes_in_progress == 0:
                break
            await asyncio.sleep(0.1)
        assert relay.handshakes_in_progress == 0
        await agent_connects(relay, audit, "127.0.0.1")
    records = refused_records(audit)  # the window is still open: the relay's close writes its records
    assert sum(int(r["refused"]) for r in records) == 188  # type: ignore[call-overload]
    assert sum(int(r["by_reason"]["preauth_cap"]) for r in records) == 188  # type: ignore[index]
    assert len(records) == len({r["source"] for r in records}) <= len(sources)  # one per source and window
    assert audit.of("relay.request.refused") == []


async def test_one_source_cannot_hold_every_handshake_slot(tmp_path: Path) -> None:
    attacker = "127.0.0.66"
    async with relay_with(tmp_path, [attacker, "127.0.0.1"], handshake_timeout_s=30.0,
                          source_window_s=1.0) as (relay, audit):
        conns, admitted = await flood(relay.port, [attacker] * 200)
        try:
            assert 0 < admitted <= relay.limits.max_unauthenticated_per_source
            await agent_connects(relay, audit, "127.0.0.1")  # while the attacker holds its slots
            records = await wait_refused_total(audit, 200 - admitted)
            assert {r["source"] for r in records} == {attacker}
            assert all(set(r["by_reason"]) <= {"preauth_cap_per_source", "rate"} for r in records)  # type: ignore[call-overload]
        finally:
            await close_all(conns)


async def test_new_connections_per_source_are_rate_limited_and_audited_once(tmp_path: Path) -> None:
    attacker = "127.0.0.77"
    async with relay_with(tmp_path, [attacker, "127.0.0.1"], connections_per_source=20, source_window_s=60.0,
                          max_unauthenticated=1000, max_unauthenticated_per_source=1000) as (relay, audit):
        admitted = 0
        for _ in range(250):  # bounded; each connection is closed before the next
            conn = await stalled(relay.port, attacker)
            admitted += await heard_version(conn, linger=0)
            await close_all([conn])
        assert admitted == 20
        await agent_connects(relay, audit, "127.0.0.1")  # another source is not throttled
        assert audit.of("relay.connections.refused") == []  # the window is still open
    records = refused_records(audit)  # the relay's close writes the open window's record
    assert len(records) == 1
    record = records[0]
    assert record["source"] == attacker
    assert (record["refused"], record["admitted"], record["by_reason"]) == (230, 20, {"rate": 230})
    assert audit.of("relay.request.refused") == []


async def test_connections_that_authenticate_as_an_agent_do_not_use_up_the_rate(tmp_path: Path) -> None:
    async with relay_with(tmp_path, ["127.0.0.1"], connections_per_source=5, source_window_s=60.0) as (relay, audit):
        for _ in range(12):  # more tunnels than the rate allows scanners, e.g. sessions opened back to back
            await agent_connects(relay, audit, "127.0.0.1")
        admitted = 0
        for _ in range(8):
            conn = await stalled(relay.port, "127.0.0.1")
            admitted += await heard_version(conn, linger=0)
            await close_all([conn])
        assert admitted == 5
    (record,) = refused_records(audit)
    assert (record["refused"], record["admitted"], record["authenticated"]) == (3, 17, 12)
