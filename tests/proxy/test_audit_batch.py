"""Group commit of audit events: batching, ordering, and fail-closed when the store fails."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from gateway.proxy.audit_batch import GroupCommitAudit
from printgate.domain import AuditEventIn
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
