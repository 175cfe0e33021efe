"""The audit's SQLite writer: one thread call per batch, the chosen commit durability, same chain."""

from __future__ import annotations

import asyncio
import concurrent.futures.thread as futures_thread
import contextlib
import os
import sqlite3
import subprocess
import sys
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text

from audit import log as audit_log
from audit.checkpoint import Signer
from audit.errors import AuditLogClosed
from audit.export import verify_store
from audit.log import AuditLog, SqliteAuditWriter
from printgate.domain import AuditEventIn
from printgate.errors import ConfigError
from printgate.store.db import Database, migrate


async def _synchronous(db: Database) -> int:
    async with db.session() as s:
        return int((await s.execute(text("PRAGMA synchronous"))).scalar_one())


def _writer_synchronous(log: AuditLog) -> int:
    assert log._writer is not None
    return int(log._writer.connection().execute("PRAGMA synchronous").fetchone()[0])


@pytest.mark.parametrize(("query", "expected"), [("", 1), ("?synchronous=normal", 1), ("?synchronous=FULL", 2)])
async def test_commit_durability_is_chosen_in_the_url(tmp_path: Path, query: str, expected: int) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/a.db{query}"
    await migrate(url)
    async with Database(url) as db:
        log = AuditLog(db, None)
        await log.append(AuditEventIn(type="test.one"))
        assert await _synchronous(db) == expected
        assert _writer_synchronous(log) == expected
        log.close()


async def test_unknown_durability_is_refused_with_the_choices(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="normal, full"):
        Database(f"sqlite+aiosqlite:///{tmp_path}/a.db?synchronous=off")


async def test_concurrent_batches_through_the_writer_make_one_verified_chain(tmp_path: Path) -> None:
    """Batches from many tasks (and a second log on the same file, as a second worker process
    would have) interleave into one gap-free chain with its checkpoints."""
    url = f"sqlite+aiosqlite:///{tmp_path}/a.db"
    await migrate(url)
    signer = Signer.generate()
    async with Database(url) as db:
        one, two = AuditLog(db, signer, checkpoint_every=10), AuditLog(db, signer, checkpoint_every=10)
        assert one._writer is not None and two._writer is not None

        async def batch(log: AuditLog, i: int) -> None:
            await log.append_many([AuditEventIn(type="test.batch", details={"i": i, "j": j}) for j in range(3)])

        await asyncio.gather(*(batch(one if i % 2 else two, i) for i in range(20)))
        report = await verify_store(db, signer.verifier())
        one.close()
        two.close()
    assert report.ok, report
    con = sqlite3.connect(tmp_path / "a.db")
    try:
        seqs = [r[0] for r in con.execute("SELECT seq FROM audit_records ORDER BY seq")]
        sizes = [r[0] for r in con.execute("SELECT tree_size FROM audit_checkpoints ORDER BY tree_size")]
    finally:
        con.close()
    assert seqs == list(range(1, 61))
    assert sizes == [10, 20, 30, 40, 50, 60]


async def test_the_writer_stores_the_rows_the_async_path_stores(tmp_path: Path) -> None:
    """Same columns, same stored forms (time stamp text, JSON personal values) either way."""
    url = f"sqlite+aiosqlite:///{tmp_path}/a.db"
    await migrate(url)
    event = AuditEventIn(type="test.same", actor="tech@example", source_ip="127.0.0.9", session_id="s1",
                         details={"path": "/x", "note": "žluť"})
    async with Database(url) as db:
        log = AuditLog(db, None)
        await log.append(event)  # the writer
        async with db.transaction() as s:
            await log.append_in(s, [event])  # the async path
        log.close()
    con = sqlite3.connect(tmp_path / "a.db")
    try:
        rows = con.execute("SELECT seq, typeof(at), length(at), type, outcome, session_id, entry IS NOT NULL"
                           " FROM audit_records ORDER BY seq").fetchall()
        personal = con.execute("SELECT actor, source_ip, json_type(fields) FROM audit_personal ORDER BY seq").fetchall()
    finally:
        con.close()
    assert [r[1:] for r in rows[:1]] == [r[1:] for r in rows[1:]]
    assert rows[0][1:] == ("text", 26, "test.same", "success", "s1", 1)
    assert personal[0] == personal[1] == ("tech@example", "127.0.0.9", "object")


async def test_commits_leave_the_wal_to_its_own_thread_and_the_wal_still_starts_over(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No append pays SQLite's automatic checkpoint (it copied and fsynced ~1,000 pages on the
    commit that crossed them: the proxy's single-connection p99). The writer's own checkpoints
    must still catch up with the appends, or the WAL file would grow without end under a steady
    stream of appends (a concurrent checkpoint alone never reaches the last commit)."""
    monkeypatch.setattr(audit_log, "WAL_CHECKPOINT_EVERY", 20)
    monkeypatch.setattr(audit_log, "WAL_FALLBACK_PAGES", 100_000)  # the writer's own checkpoints alone
    url = f"sqlite+aiosqlite:///{tmp_path}/a.db"
    await migrate(url)
    signer = Signer.generate()
    wal = tmp_path / "a.db-wal"
    async with Database(url) as db:
        log = AuditLog(db, signer, checkpoint_every=100)
        assert log._writer is not None
        # SQLite's own checkpoint only where the writer's falls behind (not at its default 1,000 pages)
        assert log._writer.connection().execute("PRAGMA wal_autocheckpoint").fetchone()[0] == \
            audit_log.WAL_FALLBACK_PAGES > 1000
        sizes, restarts = [], set()
        for i in range(1500):
            await log.append(AuditEventIn(type="test.steady", details={"i": i, "pad": "x" * 300}))
            if i % 10 == 9:
                sizes.append(wal.stat().st_size)
                with wal.open("rb") as f:  # the WAL header's checkpoint sequence: +1 per start-over
                    restarts.add(int.from_bytes(f.read(16)[12:16], "big"))
        assert log._writer.wal_checkpoints >= 1500 // 20 // 4, "checkpoints were requested but did not run"
        # ideally every 20 commits; a loaded machine's suite starves the copying thread at times
        assert len(restarts) >= 10, restarts
        # without starting over 1,500 batches of ~10 pages are ~60 MB of WAL
        assert max(sizes) < 40 * 1024 * 1024, sizes
        report = await verify_store(db, signer.verifier())
        log.close()
    assert report.ok, report
    con = sqlite3.connect(tmp_path / "a.db")
    try:
        assert con.execute("SELECT count(*) FROM audit_records").fetchone()[0] == 1500
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        con.close()


_CLOSE_RACE = """
import asyncio, sqlite3, sys
from audit.log import AuditLog
from printgate.domain import AuditEventIn
from printgate.store.db import Database, migrate

async def main(url):
    await migrate(url)
    returned = []
    async with Database(url) as db:
        for round_ in range(15):
            log = AuditLog(db, None)
            async def one(i):
                try:
                    returned.append((await log.append(AuditEventIn(type="test.race", details={"r": round_, "i": i}))).seq)
                except RuntimeError:  # closed: refused, not lost
                    pass
            tasks = [asyncio.create_task(one(i)) for i in range(20)]
            await asyncio.sleep(0.002 * (round_ % 5))
            log.close()
            await asyncio.gather(*tasks)
    con = sqlite3.connect(url.split("///", 1)[1])
    stored = {r[0] for r in con.execute("SELECT seq FROM audit_records")}
    print(len(returned), len(set(returned) - stored))

asyncio.run(main(sys.argv[1]))
"""


def test_closing_while_appends_are_in_flight_neither_crashes_nor_loses_an_acknowledged_record(tmp_path: Path) -> None:
    """close() closed the connection from the caller's thread while the writer's thread ran a
    statement on it: sqlite3 crashed the process (SIGSEGV). Now the connection is closed in its
    own thread after the batches queued before; later appends are refused, none is half-done."""
    out = subprocess.run([sys.executable, "-c", _CLOSE_RACE, f"sqlite+aiosqlite:///{tmp_path}/a.db"],
                         capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    assert out.returncode == 0, (out.returncode, out.stderr[-2000:])
    acknowledged, missing = (int(x) for x in out.stdout.split())
    assert acknowledged > 0 and missing == 0


@contextlib.asynccontextmanager
async def _writer_after_one_append(tmp_path: Path) -> AsyncIterator[tuple[AuditLog, SqliteAuditWriter]]:
    """A log on a new SQLite file whose writer has committed one batch (its connection is open)."""
    url = f"sqlite+aiosqlite:///{tmp_path}/a.db"
    await migrate(url)
    async with Database(url) as db:
        log = AuditLog(db, None)
        assert log._writer is not None
        await log.append(AuditEventIn(type="test.one"))
        yield log, log._writer


async def test_a_failed_transaction_makes_a_checkpoint_due_at_once(tmp_path: Path) -> None:
    """A full disk fails commits. Counting only commits, the checkpoint that frees the space the
    WAL holds was never tried again and appends failed for good; counting failures like commits,
    a small volume still filled up before the next one was due."""
    async with _writer_after_one_append(tmp_path) as (log, writer):
        def failing(_conn: sqlite3.Connection) -> None:
            raise sqlite3.OperationalError("database or disk is full")

        with pytest.raises(sqlite3.OperationalError):
            await writer.run(failing)
        for _ in range(100):  # the copy in its thread, then the catch-up in the writer's
            if writer.wal_checkpoints:
                break
            await asyncio.sleep(0.02)
        assert writer.wal_checkpoints == 1
        log.close()


async def test_a_checkpoint_due_or_queued_at_close_neither_raises_nor_reopens(tmp_path: Path,
                                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    async with _writer_after_one_append(tmp_path) as (log, writer):
        log.close()
        await asyncio.sleep(0.1)  # the close ran in the writer's thread
        assert not writer._conn
        monkeypatch.setattr(writer, "_since_checkpoint", audit_log.WAL_CHECKPOINT_EVERY - 1)
        writer._after_transaction()  # the trigger after a batch that committed as close() ran
        assert writer._wal_pending.acquire(blocking=False)  # released again
        writer._catch_up()  # a catch-up queued behind the close
        assert not writer._conn and writer.wal_checkpoints == 0


async def test_a_collected_writer_is_released_even_inside_another_executors_submit(tmp_path: Path) -> None:
    """The collector runs finalizers inside whatever allocated, e.g. asyncio.to_thread's submit()
    holding concurrent.futures' global lock: a finalizer that submitted its connection's close
    there waited for that lock forever and hung the event loop (seen in the suite)."""
    async with _writer_after_one_append(tmp_path) as (_log, writer):
        await asyncio.sleep(0)

        def collected_during_a_submit() -> None:
            with futures_thread._global_shutdown_lock:
                writer._finalizer()
                writer._wal_finalizer()

        t = threading.Thread(target=collected_during_a_submit, daemon=True)
        t.start()
        t.join(timeout=10)
        assert not t.is_alive(), "the finalizer waited for the lock its caller holds"
        assert not writer._conn


async def test_an_append_after_close_is_refused_with_a_typed_error_and_writes_nothing(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/a.db"
    await migrate(url)
    async with Database(url) as db:
        log = AuditLog(db, None)
        await log.append(AuditEventIn(type="test.before"))
        log.close()
        with pytest.raises(AuditLogClosed, match="is closed; the record was not written") as refused:
            await log.append(AuditEventIn(type="test.after"))
        assert refused.value.code == "audit_log_closed"
        with pytest.raises(AuditLogClosed):  # nothing to write is refused all the same
            await log.append_many([])
        with pytest.raises(AuditLogClosed):  # the caller's own transaction (pseudonymise, retention)
            async with db.transaction() as s:
                await log.append_in(s, [AuditEventIn(type="test.after.in")])
        async with db.session() as s:
            types = (await s.execute(text("SELECT type FROM audit_records ORDER BY seq"))).scalars().all()
        assert list(types) == ["test.before"]


async def test_a_batch_reaching_the_writer_after_close_does_not_reopen_the_connection(tmp_path: Path) -> None:
    """close() from another thread: a batch submitted between close()'s queued close and the
    executor's shutdown runs after the connection was closed; it is refused, not run on a
    connection opened again that nothing would ever close (tester porta)."""
    url = f"sqlite+aiosqlite:///{tmp_path}/a.db"
    await migrate(url)
    async with Database(url) as db:
        log = AuditLog(db, None)
        await log.append(AuditEventIn(type="test.before"))
        writer = log._writer
        assert writer is not None
        log.close()
        await asyncio.sleep(0.1)  # the queued close has run in the writer's thread
        assert not writer._conn
        with pytest.raises(AuditLogClosed):  # as the late batch runs: in a thread, straight to the writer
            await asyncio.to_thread(writer._transaction, lambda conn: conn.execute("SELECT 1"))
        assert not writer._conn
