"""Retention and GDPR erasure keep the log verifiable; unauthorised pruning does not."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import text

from audit.checkpoint import Signer
from audit.export import export_jsonl, verify_store
from audit.log import AuditLog
from audit.pseudonymise import erase_subject
from audit.query import AuditFilter, search
from audit.retention import RetentionPolicy, prune
from audit.stream import read_export
from audit.verify import Damage, verify_items
from printgate.store.db import Database
from tests.audit.conftest import sample_events


class SteppingClock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


async def test_pruning_a_customer_keeps_the_chain_verifiable(db: Database, signer: Signer, tmp_path: Path) -> None:
    clock = SteppingClock(datetime(2026, 1, 1, tzinfo=UTC))
    log = AuditLog(db, signer, checkpoint_every=10, clock=clock)
    await log.append_many(sample_events(30))
    clock.now += timedelta(days=100)
    await log.append_many(sample_events(5))
    await log.checkpoint()
    result = await prune(log, RetentionPolicy(keep_days=90, customer_id="cust-1"), now=clock.now)
    assert result.pruned == 10  # cust-1 = i % 3 == 1 among the 30 old events
    left = await search(db, AuditFilter(customer_id="cust-1", limit=100))
    assert [r.type for r in left if r.seq <= 30] == []
    assert any(r.type == "audit.retention.pruned" for r in left)
    report = await verify_store(db, signer.verifier())
    assert report.ok, report.problem
    assert report.tombstones == 10
    await export_jsonl(db, tmp_path / "e.jsonl")
    assert verify_items(read_export(tmp_path / "e.jsonl"), signer.verifier()).ok


async def test_content_removed_without_a_retention_record_is_reported_deleted(db: Database, signer: Signer) -> None:
    log = AuditLog(db, signer, checkpoint_every=5)
    await log.append_many(sample_events(10))
    async with db.transaction() as s:
        await s.execute(text("UPDATE audit_records SET entry = NULL, pruned_by = 10 WHERE seq = 3"))
    report = await verify_store(db, signer.verifier())
    assert report.problem is not None
    assert (report.problem.kind, report.problem.seq) == (Damage.DELETED, 3)


async def test_erasing_a_person_keeps_verification_and_hides_the_person(db: Database, signer: Signer) -> None:
    log = AuditLog(db, signer, checkpoint_every=5)
    await log.append_many(sample_events(20))
    assert len(await search(db, AuditFilter(actor="user2@dealer.example"))) == 4
    erased = await erase_subject(log, value="user2@dealer.example", requested_by="dpo@dealer.example")
    assert erased == 4
    assert await search(db, AuditFilter(actor="user2@dealer.example")) == []
    rows = await search(db, AuditFilter(limit=100))
    assert all(r.actor != "user2@dealer.example" for r in rows)
    assert rows[-1].type == "audit.personal.erased" and "user2" not in str(rows[-1].details)
    report = await verify_store(db, signer.verifier())
    assert report.ok, report.problem
    assert report.personal_checked == 2 * 21 - 2 * 4 - 1
