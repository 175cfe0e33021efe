"""A task failing again and again does not flood the log (issue 14 a14: a 10 KB traceback per
restart of every database task during a PostgreSQL outage): the traceback once per distinct error,
then one short line per restart with the count; a database outage (a real PostgreSQL stopped) is
always one short line."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import text
from structlog.testing import capture_logs

from printgate.store.db import Database
from printgate.supervisor import Backoff, Supervisor
from tests.faults.conftest import OwnPostgres


async def _failures(run: Any, count: int) -> list[dict[str, Any]]:
    sup = Supervisor("test", backoff=Backoff(initial=0.01, maximum=0.02))
    sup.add("loop", run)
    with capture_logs() as logs:
        async with sup:
            async with asyncio.timeout(60):
                while sum(e["event"] == "task.failed" for e in logs) < count:
                    await asyncio.sleep(0.01)
    return [e for e in logs if e["event"] == "task.failed"][:count]


async def test_the_same_error_again_is_one_short_line_with_its_count_a_new_one_gets_its_traceback() -> None:
    runs = 0

    async def buggy() -> None:
        nonlocal runs
        runs += 1
        if runs == 4:
            raise KeyError("another bug, elsewhere")
        raise ValueError(f"bug #{runs}")  # the same place, a different message each time

    failed = await _failures(buggy, 6)
    with_tb = [e for e in failed if "exc_info" in e]
    assert [e["error"] for e in with_tb] == ["ValueError: bug #1", "KeyError: 'another bug, elsewhere'"]
    repeats = [e for e in failed if "exc_info" not in e]
    assert [e["times"] for e in repeats] == [2, 3, 4, 5]
    assert [e["restarts"] for e in failed] == [1, 2, 3, 4, 5, 6]
    assert all(len(repr(e)) < 400 for e in repeats)


async def test_a_database_outage_is_never_a_traceback(own_postgres: OwnPostgres) -> None:
    db = Database(own_postgres.url)
    try:
        async with db.session() as s:
            assert (await s.execute(text("SELECT 1"))).scalar() == 1
        own_postgres.stop()

        async def uses_the_database() -> None:
            async with db.session() as s:
                await s.execute(text("SELECT 1"))
            await asyncio.Event().wait()

        failed = await _failures(uses_the_database, 4)
        assert all(e.get("database_outage") is True and "exc_info" not in e for e in failed), failed
        assert all(len(repr(e)) < 600 for e in failed)
    finally:
        await db.aclose()
