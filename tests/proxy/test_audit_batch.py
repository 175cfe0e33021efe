"""Group commit of audit events: batching, ordering, and fail-closed when the store fails."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from gateway.proxy.audit_batch import GroupCommitAudit
from printgate.domain import AuditEventIn, Outcome
from printgate.testing.audit import ReadableAuditLog


class BatchRecorder:
    """A sink that stores in memory and remembers batch sizes (for the batching property only)."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.broken = False

    async def append(self, event: AuditEventIn) -> None:
        await self.append_many([event])

    async def append_many(self, events: Sequence[AuditEventIn]) -> None:
        await asyncio.sleep(0.01)  # a write takes time; more events queue meanwhile
        if self.broken:
            raise OSError("disk full")
        self.batches.append([e.type for e in events])


async def test_concurrent_appends_are_written_in_few_batches_in_order():
    sink = BatchRecorder()
    group = GroupCommitAudit(sink)
    await group.start()
    try:
        await asyncio.gather(*(group.append(AuditEventIn(type=f"e{i}")) for i in range(50)))
    finally:
        await group.aclose()
    flat = [t for b in sink.batches for t in b]
    assert flat == [f"e{i}" for i in range(50)]
    assert len(sink.batches) <= 3


async def test_failing_store_raises_for_waiters_and_flags_failing():
    sink = BatchRecorder()
    group = GroupCommitAudit(sink)
    await group.start()
    try:
        sink.broken = True
        try:
            await group.append(AuditEventIn(type="x"))
        except OSError:
            pass
        else:
            raise AssertionError("a failed write must reach the waiting request")
        assert group.failing
        sink.broken = False
        await group.append(AuditEventIn(type="y"))
        assert not group.failing
    finally:
        await group.aclose()


async def test_submitted_events_reach_the_real_log_on_flush(audit_db: ReadableAuditLog):
    group = GroupCommitAudit(audit_db)
    await group.start()
    try:
        for i in range(5):
            group.submit(AuditEventIn(type="dwa.request", session_id="batch-test", details={"i": i}))
        await group.flush()
        records = await audit_db.events(session_id="batch-test")
        assert [r.details["i"] for r in records] == list(range(5))
    finally:
        await group.aclose()


class GatedRecorder(BatchRecorder):
    """A store whose writes wait until ``gate`` opens (an SQLite write lock held by another
    process), then store the events as they are (with their details)."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.stored: list[AuditEventIn] = []

    async def append_many(self, events: Sequence[AuditEventIn]) -> None:
        await self.gate.wait()
        if self.broken:
            raise OSError("database is locked")
        self.stored.extend(events)


async def test_a_waiter_that_gave_up_is_recorded_as_not_delivered():
    """Issue 21 F5: the proxy answers 503 when the record is late; the record stored later
    must say so, whether it was still queued (rewritten) or already being written (follow-up)."""
    sink = GatedRecorder()
    group = GroupCommitAudit(sink)
    await group.start()
    try:
        first = AuditEventIn(type="dwa.request", details={"path": "/a", "status": 200})
        queued = AuditEventIn(type="dwa.transfer_blocked", outcome=Outcome.BLOCKED,
                              details={"path": "/b", "status": 403, "rule": "download.encoded_blob"})
        t1 = asyncio.create_task(group.append(first))
        await asyncio.sleep(0.05)  # the writer took it: the write waits for the lock
        t2 = asyncio.create_task(group.append(queued))
        await asyncio.sleep(0.05)
        for task in (t1, t2):  # AuditRequests' timeout: the browser gets 503
            task.cancel()
        await asyncio.gather(t1, t2, return_exceptions=True)
        sink.gate.set()
        await group.flush()
    finally:
        await group.aclose()
    by_type = {e.type: e for e in sink.stored}
    assert by_type["dwa.request"].details["status"] == 200  # was in the write when the wait ended
    follow = by_type["dwa.request_not_delivered"]
    assert follow.details["status"] == 503 and follow.details["intended_status"] == 200
    assert follow.details["path"] == "/a" and follow.details["delivered"] is False
    blocked = by_type["dwa.transfer_blocked"]  # still queued: rewritten before it was written
    assert blocked.details["status"] == 503 and blocked.details["intended_status"] == 403
    assert blocked.details["not_delivered"] == "not delivered: audit timeout"
    assert blocked.details["rule"] == "download.encoded_blob"
    assert blocked.outcome == Outcome.BLOCKED


async def test_refusals_of_a_failed_write_are_kept_and_written_when_the_store_is_back():
    sink = GatedRecorder()
    sink.gate.set()
    group = GroupCommitAudit(sink, probe=sink_probe(sink), reprobe_s=0.05)
    await group.start()
    try:
        sink.broken = True
        results = await asyncio.gather(
            group.append(AuditEventIn(type="dwa.transfer_blocked", outcome=Outcome.BLOCKED,
                                      details={"path": "/x.csv", "status": 403, "rule": "download.file"})),
            group.append(AuditEventIn(type="dwa.request", details={"path": "/", "status": 200})),
            return_exceptions=True)
        assert all(isinstance(r, OSError) for r in results)  # both browsers get 503
        assert group.retained == 1
        sink.broken = False
        for _ in range(100):  # the writer's probe sees the store back and writes what it kept
            if not group.retained:
                break
            await asyncio.sleep(0.02)
    finally:
        await group.aclose()
    assert [e.type for e in sink.stored] == ["dwa.transfer_blocked"]  # the 200 page was not delivered
    kept = sink.stored[0]
    assert kept.details["rule"] == "download.file" and kept.details["status"] == 503
    assert kept.details["not_delivered"] == "not delivered: audit unavailable"


def sink_probe(sink: GatedRecorder):
    async def probe() -> None:
        if sink.broken:
            raise OSError("database is locked")
    return probe


async def test_the_audit_503_is_a_printgate_page_with_the_security_headers(monkeypatch):
    from mitmproxy.test import tflow

    from gateway.proxy.addons import audit_requests
    from gateway.proxy.addons.audit_requests import AuditRequests

    monkeypatch.setattr(audit_requests, "AUDIT_WAIT_S", 0.1)
    sink = GatedRecorder()  # the lock is held for the whole test
    group = GroupCommitAudit(sink)
    await group.start()
    try:
        flow = tflow.tflow(resp=True)
        await AuditRequests(group).response(flow)
        assert flow.response is not None
        assert flow.response.status_code == 503
        headers = flow.response.headers
        assert headers["content-type"].startswith("text/html")
        assert "default-src 'self'" in headers["content-security-policy"]
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["cache-control"] == "no-store"
        assert b"printgate" in flow.response.content and b"audit" in flow.response.content
        sink.gate.set()
        await group.flush()
    finally:
        await group.aclose()
    # the record was in the write when the wait ended: a follow-up says the browser got 503
    assert [e.type for e in sink.stored] == ["dwa.request", "dwa.request_not_delivered"]
    assert sink.stored[-1].details["status"] == 503


async def test_kept_refusals_get_a_last_try_when_the_writer_stops():
    sink = GatedRecorder()
    sink.gate.set()
    group = GroupCommitAudit(sink, probe=sink_probe(sink), reprobe_s=60)  # no probe before the stop
    await group.start()
    sink.broken = True
    try:
        await group.append(AuditEventIn(type="dwa.transfer_blocked", outcome=Outcome.BLOCKED,
                                        details={"path": "/x.csv", "status": 403}))
    except OSError:
        pass
    assert group.retained == 1
    sink.broken = False
    await group.aclose()
    assert [e.details["status"] for e in sink.stored] == [503]
