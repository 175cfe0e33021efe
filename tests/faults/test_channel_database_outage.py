"""The agent channel while PostgreSQL (a cluster this test made) is stopped: the outage is logged once
(with its duration when it ends) -- not a traceback per agent call nor a revocation_refresh_failed line
every second. (Calls answered UNAVAILABLE with a retry hint: ``AgentChannelServer.run_unary``.)"""

from __future__ import annotations

import asyncio
import logging

import pytest
from structlog.testing import capture_logs

from lab.catalog import PRINTERS
from printgate.cli.demo_system import DemoSystem
from printgate.store.db import migrate
from tests.faults.conftest import OwnPostgres


async def test_the_channel_logs_a_database_outage_once_and_answers_unavailable(
    own_postgres: OwnPostgres, tmp_path: object, caplog: pytest.LogCaptureFixture,
) -> None:
    await migrate(own_postgres.url)
    caplog.set_level(logging.WARNING)
    async with DemoSystem(tmp_path, log_level="warning", database_url=own_postgres.url,  # type: ignore[arg-type]
                          agent_overrides={
                                           "counters_interval_seconds": 1.0, "upload_interval_seconds": 0.5,
                                           "scan_interval_seconds": 3600.0}) as system:
        await system.wait_for_devices(minimum=len(PRINTERS), timeout=90)
        caplog.clear()
        with capture_logs() as events:
            own_postgres.stop("fast")
            await asyncio.sleep(8.0)  # uploads and revocation refreshes go on meanwhile
            own_postgres.start()
            await asyncio.sleep(6.0)
    names = [e["event"] for e in events]
    down = [e for e in events if e["event"] == "channel.database_unreachable"]
    up = [e for e in events if e["event"] == "channel.database_recovered"]
    assert len(down) == 1 and len(up) == 1, names
    assert up[0]["outage_seconds"] >= 7.0
    assert names.count("channel.revocation_refresh_failed") == 0, names.count("channel.revocation_refresh_failed")
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert not tracebacks, [r.getMessage()[:200] for r in tracebacks[:3]]
