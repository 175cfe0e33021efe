"""AuditLog appends: records returned, large batches, refused values."""

from __future__ import annotations

import math

import pytest

from audit.chain import GENESIS
from audit.checkpoint import Signer
from audit.errors import NotCanonicalisable
from audit.export import verify_store
from audit.log import AuditLog
from audit.query import AuditFilter, search
from printgate.domain import AuditEventIn
from printgate.interfaces import AuditSink
from printgate.store import audit as store
from printgate.store.db import Database
from tests.audit.conftest import sample_events


async def test_append_returns_the_sealed_record_linked_to_its_predecessor(db: Database, signer: Signer) -> None:
    log: AuditSink = AuditLog(db, signer)
    first = await log.append(AuditEventIn(type="auth.login", actor="alice@example", source_ip="127.0.0.1"))
    second = await log.append(AuditEventIn(type="auth.logout", actor="alice@example"))
    assert first is not None and second is not None
    assert (first.seq, first.prev_hash) == (1, GENESIS)
    assert (second.seq, second.prev_hash) == (2, first.hash)
    assert first.actor == "alice@example" and first.source_ip == "127.0.0.1"


async def test_a_large_batch_is_one_atomic_run_of_records(db: Database, signer: Signer) -> None:
    log = AuditLog(db, signer, checkpoint_every=100)
    records = await log.append_many(sample_events(450))
    assert [r.seq for r in records] == list(range(1, 451))
    assert [c.tree_size for c in await store.checkpoints(db)] == [100, 200, 300, 400]
    report = await verify_store(db, signer.verifier())
    assert report.ok, report.problem
    assert report.personal_checked == 900
    found = await search(db, AuditFilter(actor="user3@dealer.example", limit=1000))
    assert len(found) == 90 and all(r.actor == "user3@dealer.example" for r in found)


async def test_values_json_cannot_hold_are_refused_before_anything_is_written(db: Database) -> None:
    log = AuditLog(db, None)
    with pytest.raises(NotCanonicalisable, match="RFC 8785"):
        await log.append_many([AuditEventIn(type="ok"), AuditEventIn(type="bad", details={"x": math.inf})])
    with pytest.raises(NotCanonicalisable, match="needs a type"):
        await log.append(AuditEventIn(type=""))
    assert await store.read_head(db) == (0, GENESIS)
