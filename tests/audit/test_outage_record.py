"""An audit outage cannot be written while it lasts: the first write that works again is
followed by one ``audit.recovered`` record (start, end, duration, what was refused), on a
PostgreSQL cluster of the test's own that it stops and starts (never the shared :5432),
through the proxy's group-commit writer as ``printgate serve`` stacks it."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime

from alerting.rules import simple_hits
from audit.metered_log import MeteredAuditLog
from audit.query import AuditFilter, search
from gateway.proxy.audit_batch import GroupCommitAudit
from printgate.domain import AuditEventIn
from printgate.store.db import Database, migrate
from tests.faults.conftest import OwnPostgres, own_postgres

__all__ = ["own_postgres"]  # the fixture, from tests/faults


async def test_the_first_write_after_an_outage_is_followed_by_its_record(own_postgres: OwnPostgres) -> None:
    await migrate(own_postgres.url)
    db = Database(own_postgres.url)
    log = MeteredAuditLog(db, None)
    group = GroupCommitAudit(log, reprobe_s=0.3)
    await group.start()
    try:
        await group.append(AuditEventIn(type="proxy.request"))
        own_postgres.stop("fast")
        for kind in ("proxy.request", "proxy.request", "auth.login"):
            with contextlib.suppress(Exception):
                await group.append(AuditEventIn(type=kind))
        assert log.outage is not None and log.outage.refused == 3
        await asyncio.sleep(0.2)
        own_postgres.start()
        async with asyncio.timeout(20):
            while True:  # the first write that works (the pool reconnects)
                try:
                    await group.append(AuditEventIn(type="test.after"))
                    break
                except Exception:
                    await asyncio.sleep(0.2)
        await group.append(AuditEventIn(type="test.later"))  # no second record for the same outage
    finally:
        await group.aclose()
    records = await search(db, AuditFilter(limit=100))
    await db.aclose()
    types = [r.type for r in records]
    assert types.count("audit.recovered") == 1, types
    assert types.index("audit.recovered") == types.index("test.after") + 1
    rec = next(r for r in records if r.type == "audit.recovered")
    d = rec.details
    assert (d["refused"], d["refused_types"]) == (3, {"proxy.request": 2, "auth.login": 1})
    started, ended = datetime.fromisoformat(str(d["started_at"])), datetime.fromisoformat(str(d["ended_at"]))
    assert started < ended and float(str(d["duration_s"])) >= 0.2
    assert d["error"]
    [hit] = simple_hits(rec)  # security alerting tells the operators
    assert hit.rule.name == "platform.audit" and rec.dealer_id is None
