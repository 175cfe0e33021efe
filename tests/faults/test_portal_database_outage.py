"""The portal while PostgreSQL (a cluster this test made) is stopped and started: a clear 503 page
(JSON under /api), one log event per outage with its duration instead of a traceback per request,
/healthz and /readyz tell the truth, and it recovers by itself."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from structlog.testing import capture_logs

from tests.faults.conftest import PortalOnPostgres


async def test_portal_answers_503_during_a_database_outage_and_recovers(
    portal_on_own_postgres: PortalOnPostgres, caplog: pytest.LogCaptureFixture,
) -> None:
    own_postgres, client = portal_on_own_postgres.pg, portal_on_own_postgres.client
    caplog.set_level(logging.ERROR)
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
