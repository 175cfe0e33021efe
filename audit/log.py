"""``AuditLog``: the appending sink of the tamper-evident audit trail.

Appends are atomic and totally ordered: each batch runs in one transaction
that first locks the chain head (``printgate.store.audit.lock_head``), so
several processes on one PostgreSQL (or one SQLite file) still produce one
gap-free chain. Every ``checkpoint_every`` records a signed tree head is
stored in the same transaction when a ``Signer`` is configured.

On a SQLite file a batch is written by ``SqliteAuditWriter``: the same
statements on a synchronous connection of its own, run as one call in the
writer's thread. Through aiosqlite every statement is a round trip between the
event loop and the driver's thread (about fifteen per batch); one call instead
takes a single-connection append from ~2 ms to a few hundred microseconds plus
the commit's fsync, which is what the proxy's audit-before-answer waits for.

The writer's commits do not checkpoint the WAL at SQLite's 1,000 pages. SQLite's
automatic checkpoint copies the WAL into the database file and fsyncs both, on the
commit that crosses the threshold: about one audited request in a hundred waited 3-5 ms
for it, which was the proxy's whole p99 on one connection. Instead, after every
``WAL_CHECKPOINT_EVERY`` transactions (committed or not: a full disk needs its
checkpoint most), a thread and connection of their own copy the WAL (PASSIVE
checkpoints, alongside the next appends, blocking none), and then the writer's thread,
between two batches, copies the few pages appended meanwhile (a RESTART checkpoint: it
holds other processes' writers off for that long, so that the WAL file can start over
even while proxy worker processes append to the same file). SQLite's own checkpoint still
runs on the commit crossing ``WAL_FALLBACK_PAGES`` (a reader holding an old snapshot
keeps the WAL from starting over), and ``journal_size_limit`` gives a WAL file that grew
back its space when it starts over.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import threading
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from audit.chain import (
    SCHEMA_VERSION,
    PreparedEvent,
    build_entry,
    format_at,
    prepare,
    seal,
)
from audit.checkpoint import Checkpoint, Signer
from audit.errors import AuditLogClosed
from audit.merkle import Frontier, leaf_hash
from printgate.domain import AuditEventIn, AuditRecord
from printgate.errors import AuditIntegrityError
from printgate.logs import get_logger
from printgate.store import audit as store
from printgate.store.db import SQLITE_BUSY_TIMEOUT_S, Database, sqlite_options, sqlite_pragmas

log = get_logger("audit.log")

# a committed batch is about ten pages: a checkpoint every 200 transactions keeps the WAL near 8 MB
WAL_CHECKPOINT_EVERY = 200
WAL_FALLBACK_PAGES = 4000  # SQLite's automatic checkpoint, only where the above falls behind (16 MB)
WAL_SIZE_LIMIT = 16 * 1024 * 1024  # bytes a WAL file keeps when it starts over
WAL_CATCH_UP_WAIT_MS = 20  # how long the catch-up waits for other connections' readers
# the copying thread repeats its checkpoint while the appends it raced were more pages than
# this, so the writer's own catch-up (between two batches) has little left to copy
WAL_CATCH_UP_PAGES = 64
WAL_COPY_PASSES = 4


class SqliteAuditWriter:
    """One plain sqlite3 connection to the audit's SQLite file, used from one thread of its own:
    a whole batch (lock the head, insert, move the head, checkpoint, commit) is one call."""

    def __init__(self, db: Database) -> None:
        plain, synchronous = sqlite_options(db.url)
        database = make_url(plain).database
        if not database or database == ":memory:":
            raise ValueError("the audit writer needs a SQLite file")
        self.statements = store.SqliteAppends(db.engine.dialect)
        self._database = database
        self._synchronous = synchronous
        self._conn: list[sqlite3.Connection] = []  # opened on first use; shared with the finalizer
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="audit-sqlite")
        self._finalizer = weakref.finalize(self, _release_unused, self._executor, self._conn)
        self._wal_conn: list[sqlite3.Connection] = []
        self._wal_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="audit-wal")
        self._wal_finalizer = weakref.finalize(self, _release_unused, self._wal_executor, self._wal_conn)
        self._wal_pending = threading.Lock()  # held from a checkpoint's start to the writer's catch-up
        self._since_checkpoint = 0  # transactions since the last checkpoint was queued
        self.wal_checkpoints = 0  # completed (copy and catch-up), for tests and diagnostics
        self._closed = False

    @staticmethod
    def usable(db: Database) -> bool:
        if db.dialect != "sqlite":
            return False
        database = make_url(sqlite_options(db.url)[0]).database
        return bool(database) and database != ":memory:"

    async def run(self, work: Callable[[sqlite3.Connection], Any]) -> Any:
        """``work(connection)`` in one transaction (committed when it returns), in the writer's thread;
        ``AuditLogClosed`` after ``close()``."""
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, self._transaction, work)
        except RuntimeError as e:
            if self._closed:  # submit() refused: nothing was run
                raise closed_error(self._database) from e
            raise

    def connection(self) -> sqlite3.Connection:
        """The writer's connection (opened on first use, in the writer's thread; never after
        ``close()``: a batch that reaches the thread after the connection was closed is refused)."""
        if not self._conn:
            if self._closed:
                raise closed_error(self._database)
            conn = sqlite3.connect(self._database, timeout=30, isolation_level=None, check_same_thread=False)
            sqlite_pragmas(conn, self._synchronous)
            conn.execute(f"PRAGMA wal_autocheckpoint={WAL_FALLBACK_PAGES}")  # see the module doc
            conn.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
            self._conn.append(conn)
        return self._conn[0]

    def _transaction(self, work: Callable[[sqlite3.Connection], Any]) -> Any:
        conn = self.connection()
        failed = True
        try:
            conn.execute("BEGIN IMMEDIATE")  # the write lock first, as lock_head takes it on the async path
            try:
                result = work(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            failed = False
            return result
        finally:
            self._after_transaction(failed)

    def _after_transaction(self, failed: bool = False) -> None:
        """Queue a checkpoint when one is due and none is under way (a due one waits for it).
        A failed transaction makes one due at once: on a full disk the space the WAL holds is
        what the next appends need."""
        self._since_checkpoint = WAL_CHECKPOINT_EVERY if failed else self._since_checkpoint + 1
        if self._since_checkpoint >= WAL_CHECKPOINT_EVERY and self._wal_pending.acquire(blocking=False):
            self._since_checkpoint = 0
            try:
                self._wal_executor.submit(self._copy_wal)
            except RuntimeError:  # closing: the batch itself is committed, its caller gets its records
                self._wal_pending.release()

    def _copy_wal(self) -> None:
        """In the WAL thread: copy the WAL into the database file, then queue the writer's catch-up."""
        try:
            if not self._wal_conn:
                self._wal_conn.append(sqlite3.connect(self._database, timeout=1, isolation_level=None,
                                                      check_same_thread=False))
            copied = 0
            for _ in range(WAL_COPY_PASSES):
                _busy, frames, _copied = self._wal_conn[0].execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                if frames - copied <= WAL_CATCH_UP_PAGES:
                    break
                copied = frames
            self._executor.submit(self._catch_up)
        except (sqlite3.Error, RuntimeError) as e:  # RuntimeError: the writer is closing
            self._wal_pending.release()
            if isinstance(e, sqlite3.Error):  # the next request tries again; the WAL only grows meanwhile
                log.warning("audit.wal_checkpoint_failed", error=str(e))

    def _catch_up(self) -> None:
        """In the writer's thread, between two batches: copy what was appended during the copy."""
        try:
            if self._conn:  # not after close(): that ran before in this thread and closed it
                conn = self._conn[0]
                # RESTART: holds other processes' writers off (a few pages to copy) until the WAL
                # can start over; a reader still on an old snapshot gets WAL_CATCH_UP_WAIT_MS
                conn.execute(f"PRAGMA busy_timeout={WAL_CATCH_UP_WAIT_MS}")
                try:
                    conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
                finally:
                    conn.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_S * 1000}")
                self.wal_checkpoints += 1
        except sqlite3.Error as e:
            log.warning("audit.wal_checkpoint_failed", error=str(e))
        finally:
            self._wal_pending.release()

    def close(self) -> None:
        """Close both connections, each in its own thread after the work queued before."""
        self._closed = True
        self._finalizer.detach()
        self._wal_finalizer.detach()
        _close_in_thread(self._executor, self._conn)
        _close_in_thread(self._wal_executor, self._wal_conn)


def closed_error(database: str) -> AuditLogClosed:
    """The refusal of an append after ``close()`` (``database``: the SQLite file, if any)."""
    what = f"the audit log {database}" if database else "the audit log"
    return AuditLogClosed(f"{what} is closed; the record was not written")


def _release_unused(executor: ThreadPoolExecutor, conn: list[sqlite3.Connection]) -> None:
    """A collected writer's thread and connection. Nothing runs on the connection then (queued
    work holds the writer), so it is closed here. Nothing is submitted either: a finalizer runs
    inside whatever allocated the object that set off the collection, e.g. another executor's
    submit() holding concurrent.futures' global lock, which a submit() here would wait for forever."""
    executor.shutdown(wait=False)
    _close_all(conn)


def _close_in_thread(executor: ThreadPoolExecutor, conn: list[sqlite3.Connection]) -> None:
    """Close the connection in its own thread, after the batches or checkpoints queued before
    (closing it from another thread while a statement runs crashed the process in sqlite3)."""
    with contextlib.suppress(RuntimeError):  # already shut down
        executor.submit(_close_all, conn)
    executor.shutdown(wait=False)


def _close_all(conn: list[sqlite3.Connection]) -> None:
    while conn:
        conn.pop().close()


class AuditLog:
    """Hash-chained, checkpointed audit log (implements ``AuditSink``)."""

    def __init__(
        self,
        db: Database,
        signer: Signer | None,
        *,
        checkpoint_every: int = 1000,
        clock: Callable[[], datetime] | None = None,
        salt: Callable[[int], bytes] = os.urandom,
    ) -> None:
        if checkpoint_every < 1:
            raise ValueError("checkpoint_every must be >= 1")
        self.db = db
        self.signer = signer
        self.checkpoint_every = checkpoint_every
        self._clock = clock or (lambda: datetime.now(UTC))
        self._salt = salt
        self._writer: SqliteAuditWriter | None = (
            SqliteAuditWriter(db) if SqliteAuditWriter.usable(db) else None)
        self._closed = False

    def _refuse_if_closed(self) -> None:
        if self._closed:
            raise closed_error(self._writer._database if self._writer is not None else "")

    async def append(self, event: AuditEventIn) -> AuditRecord:
        return (await self.append_many([event]))[0]

    async def append_many(self, events: Sequence[AuditEventIn]) -> list[AuditRecord]:
        """Append ``events`` in order, atomically, as consecutive records (``AuditLogClosed`` after
        ``close()``, on either database)."""
        self._refuse_if_closed()
        prepared = [prepare(e, self._salt) for e in events]
        if not prepared:
            return []
        if self._writer is not None:
            records: list[AuditRecord] = await self._writer.run(lambda conn: self._append_sync(conn, prepared))
            return records
        async with self.db.transaction() as s:
            return await self._append_locked(s, prepared)

    def close(self) -> None:
        """Refuse further appends; release the SQLite writer's connection and thread (also done when
        the log is collected)."""
        self._closed = True
        if self._writer is not None:
            self._writer.close()

    def _append_sync(self, conn: sqlite3.Connection, prepared: Sequence[PreparedEvent]) -> list[AuditRecord]:
        assert self._writer is not None
        sql = self._writer.statements
        last_seq, last_hash = sql.lock_head(conn)
        rows, personal_rows, records = self._build(prepared, last_seq, last_hash)
        sql.insert_rows(conn, rows, personal_rows)
        seq, head = records[-1].seq, records[-1].hash
        sql.set_head(conn, seq, head)
        if self.signer is not None:
            at = format_at(records[-1].at)
            n = self.checkpoint_every
            for boundary in range((last_seq // n + 1) * n, seq + 1, n):
                base = sql.latest_checkpoint(conn, at_most=boundary)
                if base is not None and base.tree_size == boundary:
                    continue
                hashes = sql.record_hashes(conn, base.tree_size + 1 if base is not None else 1, boundary)
                cp, row = self._sign(base, hashes, boundary, at)
                sql.insert_checkpoint(conn, row)
                log.info("audit.checkpoint", tree_size=boundary, key_id=cp.key_id)
        return records

    async def append_in(self, s: AsyncSession, events: Sequence[AuditEventIn]) -> list[AuditRecord]:
        """Append inside the caller's transaction ``s`` (locks the chain head)."""
        self._refuse_if_closed()
        return await self._append_locked(s, [prepare(e, self._salt) for e in events])

    async def _append_locked(self, s: AsyncSession, prepared: Sequence[PreparedEvent]) -> list[AuditRecord]:
        last_seq, last_hash = await store.lock_head(s)
        rows, personal_rows, records = self._build(prepared, last_seq, last_hash)
        if not records:
            return records
        seq, prev = records[-1].seq, records[-1].hash
        at = format_at(records[-1].at)
        await store.insert_records(s, rows)
        await store.insert_personal(s, personal_rows)
        await store.set_head(s, seq, prev)
        if self.signer is not None:
            n = self.checkpoint_every
            for boundary in range((last_seq // n + 1) * n, seq + 1, n):
                await self._checkpoint_locked(s, boundary, at)
        return records

    def _build(self, prepared: Sequence[PreparedEvent], last_seq: int, last_hash: str,
               ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[AuditRecord]]:
        """The rows of ``prepared`` sealed after ``(last_seq, last_hash)``, and their records."""
        at_dt = self._clock()
        at = format_at(at_dt)  # raises for a naive time
        at_dt = at_dt.astimezone(UTC)  # what ``at`` says, exactly (microseconds kept): no strptime per batch
        rows: list[dict[str, Any]] = []
        personal_rows: list[dict[str, Any]] = []
        records: list[AuditRecord] = []
        prev = last_hash
        seq = last_seq
        for p in prepared:
            seq += 1
            entry = build_entry(p, seq=seq, at=at, prev=prev)
            data, h = seal(entry, known_fast=p.fast)
            rows.append({
                "seq": seq, "at": at_dt, "schema_version": SCHEMA_VERSION, "type": p.type,
                "outcome": p.outcome, "dealer_id": p.dealer_id, "customer_id": p.customer_id,
                "device_id": p.device_id, "session_id": p.session_id,
                "entry": data.decode("utf-8"), "hash": h, "prev": prev, "pruned_by": None,
            })
            if p.personal:
                personal_rows.append({
                    "seq": seq,
                    "actor": p.personal["actor"][0] if "actor" in p.personal else None,
                    "source_ip": p.personal["source_ip"][0] if "source_ip" in p.personal else None,
                    "fields": {f: [v, salt.hex()] for f, (v, salt) in p.personal.items()},
                })
            extra = {f: v for f, (v, _) in p.personal.items() if f not in ("actor", "source_ip")}
            records.append(AuditRecord(
                seq=seq, at=at_dt, schema_version=SCHEMA_VERSION, type=p.type, outcome=p.outcome,
                prev_hash=prev, hash=h, dealer_id=p.dealer_id, customer_id=p.customer_id,
                device_id=p.device_id, session_id=p.session_id,
                actor=p.personal["actor"][0] if "actor" in p.personal else None,
                source_ip=p.personal["source_ip"][0] if "source_ip" in p.personal else None,
                details=p.details, personal=extra,
            ))
            prev = h
        return rows, personal_rows, records

    async def checkpoint(self) -> Checkpoint | None:
        """Sign a tree head over every record so far (None without a signer or records)."""
        if self.signer is None:
            return None
        async with self.db.transaction() as s:
            seq, _ = await store.lock_head(s)
            if seq == 0:
                return None
            existing = await store.latest_checkpoint(s, at_most=seq)
            if existing is not None and existing.tree_size == seq:
                return _from_row(existing)
            return await self._checkpoint_locked(s, seq, format_at(self._clock()))

    async def _checkpoint_locked(self, s: AsyncSession, size: int, at: str) -> Checkpoint:
        if self.signer is None:
            raise AuditIntegrityError("checkpoints need a signing key (printgate audit keygen)")
        base = await store.latest_checkpoint(s, at_most=size)
        if base is not None and base.tree_size == size:
            return _from_row(base)
        hashes = await store.record_hashes(s, base.tree_size + 1 if base is not None else 1, size)
        cp, row = self._sign(base, hashes, size, at)
        await store.insert_checkpoint(s, row)
        log.info("audit.checkpoint", tree_size=size, key_id=cp.key_id)
        return cp

    def _sign(self, base: Any, hashes: list[str], size: int, at: str) -> tuple[Checkpoint, dict[str, Any]]:
        """The checkpoint of ``size`` records from the previous one (``base``) and the hashes after it."""
        if self.signer is None:
            raise AuditIntegrityError("checkpoints need a signing key (printgate audit keygen)")
        frontier = (Frontier(base.tree_size, [bytes.fromhex(h) for h in base.frontier])
                    if base is not None else Frontier())
        if len(hashes) != size - frontier.size:
            raise AuditIntegrityError(
                f"audit chain has gaps below record {size}: run `printgate audit verify`")
        for h in hashes:
            frontier.append(leaf_hash(bytes.fromhex(h)))
        head = hashes[-1] if hashes else str(base.head if base else "")
        cp = self.signer.sign(tree_size=size, root=frontier.root(), head=head, at=at)
        return cp, {
            "tree_size": size, "root": cp.root, "head": cp.head, "at": cp.at,
            "key_id": cp.key_id, "signature": cp.signature,
            "frontier": [h.hex() for h in frontier.hashes()],
        }


def _from_row(row: Any) -> Checkpoint:
    return Checkpoint(int(row.tree_size), row.root, row.head, row.at, row.key_id, row.signature)
