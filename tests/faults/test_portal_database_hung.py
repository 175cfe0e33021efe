"""The portal while PostgreSQL (a cluster this test made) hangs: its processes are SIGSTOPped, so TCP
connects still succeed but nothing ever answers. Requests must answer 503 within seconds (connect and
command timeouts), the outage is logged at the first failure, and the recovery logs the real duration."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

from structlog.testing import capture_logs

from tests.faults.conftest import OwnPostgres, PortalOnPostgres


def _cluster_pids(pg: OwnPostgres) -> list[int]:
    """The postmaster (first line of postmaster.pid) and all its children."""
    postmaster = int((pg.data / "postmaster.pid").read_text().splitlines()[0])
    pids = [postmaster]
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == postmaster:
            pids.append(int(stat.parent.name))
    return pids


def _signal_all(pids: list[int], sig: signal.Signals) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


async def test_portal_answers_503_within_seconds_while_the_database_hangs(
    portal_on_own_postgres: PortalOnPostgres,
) -> None:
    own_postgres, client = portal_on_own_postgres.pg, portal_on_own_postgres.client
    pids: list[int] = []
    try:
        assert (await client.get("/devices")).status_code == 200

        with capture_logs() as events:
            pids = _cluster_pids(own_postgres)
            _signal_all(pids, signal.SIGSTOP)
            stopped = time.monotonic()
            first = await client.get("/devices")
            first_in = time.monotonic() - stopped
            logged_in = time.monotonic() - stopped
            later = time.monotonic()
            second = await client.get("/api/devices", headers={"accept": "application/json"})
            second_in = time.monotonic() - later
            await asyncio.sleep(1.0)
            _signal_all(pids, signal.SIGCONT)
            pids = []
            resumed = time.monotonic()
            back = await client.get("/devices")
            while back.status_code != 200 and time.monotonic() - resumed < 15:
                await asyncio.sleep(0.2)
                back = await client.get("/devices")
            outage_real = time.monotonic() - stopped

        assert first.status_code == 503 and first_in < 10, (first.status_code, first_in)
        assert second.status_code == 503 and second_in < 10, (second.status_code, second_in)
        assert back.status_code == 200, "the portal did not recover after the database resumed"
        down = [e for e in events if e["event"] == "portal.database_unreachable"]
        up = [e for e in events if e["event"] == "portal.database_recovered"]
        assert len(down) == 1 and len(up) == 1, [e["event"] for e in events]
        assert logged_in < 10
        # the duration counts from when requests started failing to wait, not from the first timeout
        assert first_in <= up[0]["outage_seconds"] + 0.5
        assert up[0]["outage_seconds"] <= outage_real + 0.5
        assert up[0]["outage_seconds"] >= first_in + 1.0 - 0.5
    finally:
        _signal_all(pids, signal.SIGCONT)
