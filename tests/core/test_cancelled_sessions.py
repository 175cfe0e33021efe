"""Tasks cancelled in the middle of their database work leave no transaction open (issue 12
follow-up, item 1, beyond the agent channel): rounds of 16 concurrent write transactions,
each cancelled -- some twice, as gRPC and timeouts do -- at staggered moments mid-statement.
Afterwards a write must start at once. Before the fix, on SQLite, SQLAlchemy's rollback was
itself cancelled ("Exception during reset or similar ... CancelledError") and a pooled
connection kept the write lock for good.

The attack runs in a child process with a deadline: a wedged run leaves tasks that never
finish, which must not hang the test session.

KNOWN OPEN on SQLite (xfail, not strict): ``Database`` now rolls back and closes shielded
from cancellation, but a cancellation landing inside a statement still sends SQLAlchemy's
aiosqlite adaptor down its invalidate/terminate path, and in some runs a connection keeps
the write lock. The agent channel is safe because its calls' work runs detached
(``gateway/channel/detached.py``, tests/channel/test_cancelled_calls_release_database.py);
other code that cancels database work (timeouts, cancelled requests) is not yet.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ATTACK = textwrap.dedent("""
    import asyncio, json, sys, time
    from sqlalchemy import text
    from printgate.domain import AuditEventIn
    from printgate.testing.audit import ReadableAuditLog
    from printgate.testing.database import migrated

    async def main(url):
        async with migrated(url) as db:
            audit = ReadableAuditLog(db, None)
            async with db.transaction() as s:
                await s.execute(text("CREATE TABLE IF NOT EXISTS cancel_probe (x INTEGER)"))

            async def work(i):
                async with db.transaction() as s:
                    await s.execute(text("INSERT INTO cancel_probe VALUES (:x)"), {"x": i})
                    await asyncio.sleep(0)
                    await s.execute(text("SELECT count(*) FROM cancel_probe"))
                await audit.append(AuditEventIn(type="test.cancel_probe", actor="test"))

            for r in range(6):
                tasks = [asyncio.create_task(work(i)) for i in range(16)]
                await asyncio.sleep(0.002 + 0.008 * r)
                for n, t in enumerate(tasks):
                    t.cancel()
                    if n % 2:
                        t.cancel()
                _, pending = await asyncio.wait(tasks, timeout=10)
                print("round", r, "pending", len(pending), file=sys.stderr, flush=True)
            started = time.monotonic()
            try:
                async with asyncio.timeout(10):
                    await audit.append(AuditEventIn(type="test.after_cancellations", actor="test"))
                wrote = round(time.monotonic() - started, 2)
            except TimeoutError:
                wrote = None
            print(json.dumps({"write_s": wrote, "writable": await db.writable(timeout=2.0)}), flush=True)

    asyncio.run(main(sys.argv[1]))
""")


def test_cancelled_transactions_release_the_database(database_url: str, tmp_path: Path,
                                                     request: pytest.FixtureRequest) -> None:
    if database_url.startswith("sqlite"):
        request.applymarker(pytest.mark.xfail(reason="cancellation inside an aiosqlite statement can still "
                                                     "leave the write lock held (see module doc)", strict=False))
    try:
        done = subprocess.run([sys.executable, "-c", ATTACK, database_url], capture_output=True, text=True,
                              timeout=150, cwd=Path(__file__).parents[2])
    except subprocess.TimeoutExpired as exc:
        raise AssertionError("the cancelled transactions wedged the database (no answer in 150 s)") from exc
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert lines, done.stderr[-3000:]
    result = json.loads(lines[-1])
    assert result == {"write_s": result["write_s"], "writable": None}, (result, done.stderr[-1500:])
    assert result["write_s"] is not None and result["write_s"] < 10
