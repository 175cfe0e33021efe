"""The proxy's audit writer across a PostgreSQL stop (a cluster this test made): a request whose
record cannot be written is not served, and the writer probes the database on its own, so it is
not latched failing once the database is back (no other write needed)."""

from __future__ import annotations

import asyncio
import time

from mitmproxy import http
from mitmproxy.test import tflow
from sqlalchemy import func, select

from audit.log import AuditLog
from gateway.proxy.addons.audit_requests import AuditRequests
from gateway.proxy.audit_batch import GroupCommitAudit
from printgate.domain import AuditEventIn
from printgate.store.db import Database, migrate
from printgate.store.models.audit import AuditRecordRow
from tests.faults.conftest import OwnPostgres


def _served_flow() -> http.HTTPFlow:
    flow = tflow.tflow(resp=True)
    assert flow.response is not None and flow.response.status_code == 200
    return flow


async def test_no_request_is_served_unaudited_and_the_writer_recovers_by_itself(own_postgres: OwnPostgres) -> None:
    await migrate(own_postgres.url)
    db = Database(own_postgres.url)
    group = GroupCommitAudit(AuditLog(db, None), reprobe_s=0.5)
    addon = AuditRequests(group)
    await group.start()
    try:
        ok = _served_flow()
        await addon.response(ok)
        assert ok.response is not None and ok.response.status_code == 200

        own_postgres.stop("fast")
        during = _served_flow()
        await addon.response(during)  # its record cannot be written: it is not served
        assert during.response is not None and during.response.status_code == 503
        assert group.failing

        own_postgres.start()
        back = time.monotonic()
        while group.failing and time.monotonic() - back < 10:  # nothing is written meanwhile
            await asyncio.sleep(0.1)
        assert not group.failing, "the audit writer stayed latched after the database came back"
        assert time.monotonic() - back < 5

        after = _served_flow()
        await addon.response(after)
        assert after.response is not None and after.response.status_code == 200
        await group.append(AuditEventIn(type="test.marker"))
    finally:
        await group.aclose()
    async with db.session() as s:
        stored = (await s.execute(select(func.count()).select_from(AuditRecordRow))).scalar_one()
    await db.aclose()
    assert stored == 3  # the two served requests and the marker; the refused one was never served
