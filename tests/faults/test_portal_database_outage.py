"""The portal while PostgreSQL (a cluster this test made) is stopped and started: a clear 503 page
(JSON under /api), one log event per outage with its duration instead of a traceback per request,
/healthz and /readyz tell the truth, and it recovers by itself."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time

import httpx
import pytest
from structlog.testing import capture_logs

from lab.ports import free_tcp_port
from portal.app import create_app
from printgate.domain import Role
from printgate.settings import PortalSettings
from printgate.store.db import Database, migrate
from printgate.testing.audit import RecordingAuditSink
from printgate.testing.broker import PolicyBroker
from printgate.testing.portal import Clock, create_user, served, sign_in
from printgate.testing.tenancy import Tenancy
from tests.faults.conftest import OwnPostgres


class _Portal:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock


async def test_portal_answers_503_during_a_database_outage_and_recovers(
    own_postgres: OwnPostgres, caplog: pytest.LogCaptureFixture,
) -> None:
    await migrate(own_postgres.url)
    db = Database(own_postgres.url)
    await Tenancy().dealer("d1").save(db)
    clock = Clock()
    port = free_tcp_port()
    base = f"http://127.0.0.1:{port}"
    app = create_app(PortalSettings(public_url=base, secret_key=secrets.token_urlsafe(32)), db=db,
                     broker=PolicyBroker(db, clock, base), audit=RecordingAuditSink(), clock=clock)
    user, secret = await create_user(db, Role.TECHNICIAN)
    caplog.set_level(logging.ERROR)
    try:
        async with served(app, port), httpx.AsyncClient(base_url=base, timeout=20,
                                                          follow_redirects=False) as client:
            await sign_in(client, _Portal(clock), user, secret)
            assert (await client.get("/devices")).status_code == 200
            assert (await client.get("/readyz")).status_code == 200

            with capture_logs() as events:
                own_postgres.stop("fast")
                stopped = time.monotonic()
                pages = [await client.get("/devices") for _ in range(30)]
                api = await client.get("/api/devices", headers={"accept": "application/json"})
                alive = await client.get("/healthz")
                ready = await client.get("/readyz")
                await asyncio.sleep(1.0)
                own_postgres.start()
                started = time.monotonic()
                back = await client.get("/devices")
                while back.status_code != 200 and time.monotonic() - started < 10:
                    await asyncio.sleep(0.2)
                    back = await client.get("/devices")
                recovered_in = time.monotonic() - started
                ready_again = await client.get("/readyz")

            assert {p.status_code for p in pages} == {503}
            assert "cannot be reached" in pages[0].text and "text/html" in pages[0].headers["content-type"]
            assert pages[0].headers["retry-after"]
            assert pages[0].headers["x-frame-options"] == "DENY"  # the portal's security headers too
            assert api.status_code == 503 and api.json()["error"] == "database_unavailable"
            assert alive.status_code == 200
            assert ready.status_code == 503 and ready.json()["checks"]["database"] != "ok"
            assert back.status_code == 200, "the portal did not recover without a restart"
            assert recovered_in < 5
            assert ready_again.status_code == 200

            down = [e for e in events if e["event"] == "portal.database_unreachable"]
            up = [e for e in events if e["event"] == "portal.database_recovered"]
            assert len(down) == 1 and len(up) == 1, [e["event"] for e in events]
            assert up[0]["outage_seconds"] >= 1.0
            assert up[0]["outage_seconds"] <= time.monotonic() - stopped
            assert not [r for r in caplog.records if r.exc_info], "a traceback was logged for a request"
    finally:
        await db.aclose()
