"""The proxy's audit writer across a PostgreSQL stop (a cluster this test made): a request whose
record cannot be written is not served, and the writer probes the database on its own, so it is
not latched failing once the database is back (no other write needed)."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from pathlib import Path

import httpx
from mitmproxy import http
from mitmproxy.test import tflow
from sqlalchemy import func, select

from audit.log import AuditLog
from gateway.proxy.addons.audit_requests import AuditRequests
from gateway.proxy.audit_batch import GroupCommitAudit
from portal.app import create_app
from printgate.domain import AuditEventIn
from printgate.settings import PortalSettings
from printgate.store.db import Database, migrate
from printgate.store.models.audit import AuditRecordRow
from printgate.testing.audit import RecordingAuditSink
from printgate.testing.broker import PolicyBroker
from printgate.testing.portal import Clock
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


async def test_readyz_is_not_ready_while_the_proxy_cannot_audit(own_postgres: OwnPostgres, tmp_path: Path) -> None:
    """The portal's own database answers, the audit writer's does not: a load balancer must hear it."""
    await migrate(own_postgres.url)
    audit_db = Database(own_postgres.url)
    group = GroupCommitAudit(AuditLog(audit_db, None), reprobe_s=0.3)
    portal_url = f"sqlite+aiosqlite:///{tmp_path}/portal.db"
    await migrate(portal_url)
    portal_db = Database(portal_url)
    clock = Clock()
    app = create_app(PortalSettings(secret_key=secrets.token_urlsafe(32)), db=portal_db,  # type: ignore[arg-type]
                     broker=PolicyBroker(portal_db, clock, "http://portal.test"), audit=RecordingAuditSink(),
                     clock=clock)
    app.state.audit_failing = lambda: group.failing  # as printgate/cli/cloud.py wires the proxy's writer
    await group.start()
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://portal.test") as c:
            assert (await c.get("/readyz")).status_code == 200
            own_postgres.stop("fast")
            with contextlib.suppress(Exception):
                await group.append(AuditEventIn(type="test.during"))
            during = await c.get("/readyz")
            own_postgres.start()
            async with asyncio.timeout(10):
                while group.failing:
                    await asyncio.sleep(0.1)
            after = await c.get("/readyz")
    finally:
        await group.aclose()
        await audit_db.aclose()
        await portal_db.aclose()
    assert during.status_code == 503 and during.json()["checks"]["database"] == "ok"
    assert "audit writer" in during.json()["checks"]["audit"]
    assert after.status_code == 200
