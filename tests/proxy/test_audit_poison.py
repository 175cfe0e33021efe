"""Audit poisoning (issue 21 F5): bytes that are not UTF-8 in a request line or header must not
cost anyone their answer or their record.

A raw ``GET /\\xff`` reached the audit writer as a lone surrogate; its record could not be
canonicalised and the group commit failed the WHOLE batch, so other sessions' requests got
503 and refusals left no record. Here the poison is sent over raw sockets through a real
session to the hostile device while another session browses: the other session never gets a
503, the poison requests and the refusals among them are each recorded (bytes as ``%XX``).
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator

import pytest

from audit.errors import NotCanonicalisable
from gateway.proxy.audit_batch import GroupCommitAudit
from printgate.domain import AuditEventIn, Outcome, event_types
from printgate.testing.audit import ReadableAuditLog
from tests.proxy.conftest import ProxyHarness, SessionClient, exchange, status_of
from tests.proxy.hostile_device import SECRET, HostileDevice
from tests.proxy.test_adversarial import open_route

B64URL = base64.urlsafe_b64encode(SECRET).rstrip(b"=")


@pytest.fixture(scope="module")
async def hostile() -> AsyncIterator[HostileDevice]:
    async with HostileDevice() as device:
        yield device


@pytest.fixture
async def two_sessions(harness: ProxyHarness, hostile: HostileDevice) -> AsyncIterator[tuple[SessionClient, SessionClient]]:
    attacker = SessionClient(harness, open_route(harness, hostile))
    victim = SessionClient(harness, open_route(harness, hostile))
    await attacker.launch()
    await victim.launch()
    yield attacker, victim
    await attacker.aclose()
    await victim.aclose()


def request(target: bytes, client: SessionClient, extra: bytes = b"") -> bytes:
    assert client.cookie
    return (b"GET " + target + b" HTTP/1.1\r\nHost: " + client.netloc.encode() + b"\r\nCookie: "
            + client.cookie.encode() + b"\r\n" + extra + b"Connection: close\r\n\r\n")


POISON = [
    b"/\xff",
    b"/sink/\xed\xa0\x80",
    b"/sink/\xff\xfe?d=" + B64URL,  # refused (encoded upload) AND poisoned
    b"/dl/html-b64-60k",              # refused download (a poisoned header below)
]


async def test_raw_bytes_in_the_request_line_cost_no_other_session_its_answer_and_every_refusal_is_recorded(
        harness: ProxyHarness, hostile: HostileDevice, two_sessions: tuple[SessionClient, SessionClient]):
    attacker, victim = two_sessions
    port = harness.proxy.port

    async def poison(i: int) -> int:
        target = POISON[i % len(POISON)]
        extra = b"X-Poison: \xff\xfe\r\n" if i % 2 else b""
        return status_of(await exchange(port, request(target, attacker, extra), wait_s=15.0))

    async def browse() -> int:
        return (await victim.request("GET", "/")).status_code

    results = await asyncio.gather(*(poison(i) for i in range(24)), *(browse() for _ in range(48)))
    poisoned, browsed = results[:24], results[24:]
    assert browsed.count(503) == 0 and set(browsed) == {200}, browsed
    assert 503 not in poisoned, poisoned
    assert poisoned.count(403) >= 12, poisoned  # at least the upload and the download cases
    assert not hostile.state.saw(B64URL[3000:3040])

    events = await harness.events(attacker.route.session_id)
    blocked = [e for e in events if e.type == event_types.DWA_TRANSFER_BLOCKED]
    assert len(blocked) == poisoned.count(403), [(e.details.get("path"), e.details.get("rule")) for e in blocked]
    paths = {e.details["path"] for e in events if e.type in (event_types.DWA_REQUEST, event_types.DWA_TRANSFER_BLOCKED)}
    assert {"/%FF", "/sink/%ED%A0%80", "/sink/%FF%FE", "/dl/html-b64-60k"} <= paths, paths
    assert not [e for e in events if e.type == event_types.DWA_AUDIT_EVENT_REJECTED]  # made valid, not rejected
    victim_events = await harness.events(victim.route.session_id)
    assert len([e for e in victim_events if e.type == event_types.DWA_REQUEST]) >= 48
    assert (await victim.request("GET", "/")).status_code == 200


class _NotRepresentable:
    """A details value the real log cannot canonicalise (what a bug in a check could put there)."""


async def test_one_event_the_store_refuses_is_replaced_by_a_rejected_record_and_fails_no_other(
        audit_db: ReadableAuditLog):
    group = GroupCommitAudit(audit_db)
    await group.start()
    try:
        good = [AuditEventIn(type=event_types.DWA_REQUEST, session_id="poison-batch", details={"i": i})
                for i in range(20)]
        bad = AuditEventIn(type=event_types.DWA_TRANSFER_BLOCKED, outcome=Outcome.BLOCKED, session_id="poison-batch",
                           details={"rule": "download.encoded_blob", "size": float("nan")})
        with pytest.raises(NotCanonicalisable):  # what fails the batch: the real log refuses it
            await audit_db.append(bad)
        await asyncio.gather(*(group.append(e) for e in good[:10]), group.append(bad),
                             *(group.append(e) for e in good[10:]))
        assert not group.failing
    finally:
        await group.aclose()
    records = await audit_db.events(session_id="poison-batch")
    assert sorted(r.details["i"] for r in records if r.type == event_types.DWA_REQUEST) == list(range(20))
    rejected = [r for r in records if r.type == event_types.DWA_AUDIT_EVENT_REJECTED]
    assert len(rejected) == 1
    assert rejected[0].details["rejected_type"] == event_types.DWA_TRANSFER_BLOCKED
    assert rejected[0].details["error_type"] == "NotCanonicalisable"
    assert rejected[0].outcome == "blocked"


async def test_a_refused_response_waits_for_its_record_no_longer_than_the_bound(
        harness: ProxyHarness, hostile: HostileDevice, two_sessions: tuple[SessionClient, SessionClient],
        monkeypatch: pytest.MonkeyPatch):
    """The audit store's write lock held by another process: a refused download waited as long
    as the lock was held (over 60 s in the attack); now it gets a 503 after the bound, like an
    allowed request, and nothing of the refused body."""
    import sqlite3
    import time

    from gateway.proxy.addons import audit_requests

    monkeypatch.setattr(audit_requests, "AUDIT_WAIT_S", 1.5)
    attacker, _victim = two_sessions
    url = str(harness.audit.db.url)
    assert url.startswith("sqlite"), url
    path = url.split("///", 1)[1]
    holder = sqlite3.connect(path, timeout=1, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    try:
        started = time.monotonic()
        refused = await attacker.request("GET", "/dl/html-b64-60k")
        waited = time.monotonic() - started
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert refused.status_code == 503, (refused.status_code, refused.text[:200])
    assert waited < 10, waited
    assert b"QUJD" not in refused.content and len(refused.content) < 1000
    assert (await attacker.request("GET", "/")).status_code == 200
