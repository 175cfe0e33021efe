"""Store-and-forward: readings go to a local SQLite file first, then up in batches.

A batch is *sealed* (its id and its readings written in one transaction)
before the first upload attempt; until the cloud acknowledges it, every retry
- after a network error, a cloud restart or an agent restart - re-sends the
same batch id with the same readings. The cloud ignores batch ids it has
seen, so each reading arrives exactly once. Stdlib ``sqlite3`` (the agent
ships without SQLAlchemy); calls run in a worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import sqlite3
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

from printgate.domain import Reading
from printgate.errors import AgentUnavailable
from printgate.logs import get_logger
from printgate.wire import MAX_MESSAGE_BYTES
from printgate.wire import agent_pb2 as pb
from printgate.wire.convert import reading_to_wire

log = get_logger("agent.readings_queue")

SCHEMA = """
CREATE TABLE IF NOT EXISTS queued (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    body TEXT NOT NULL,
    batch_id TEXT
);
CREATE INDEX IF NOT EXISTS queued_batch ON queued(batch_id);
CREATE TABLE IF NOT EXISTS drops (
    ip TEXT NOT NULL,
    kind TEXT NOT NULL,
    reason TEXT NOT NULL,
    count INTEGER NOT NULL,
    first_at TEXT NOT NULL,
    last_at TEXT NOT NULL,
    PRIMARY KEY (ip, kind, reason)
);
CREATE TABLE IF NOT EXISTS dead_letter (
    id TEXT NOT NULL,
    body TEXT NOT NULL,
    batch_id TEXT NOT NULL,
    reason TEXT NOT NULL,
    at TEXT NOT NULL
);
"""
DEAD_BATCH = "batch"  # dead_letter.kind: a whole batch the cloud did not accept (set aside)
DEAD_READING = "reading"  # dead_letter.kind: one reading the cloud refused (its batch was acknowledged)
STALE_AFTER = timedelta(minutes=30)  # readings waiting this long with nothing delivered: not healthy
MAX_BATCH_BYTES = MAX_MESSAGE_BYTES // 2  # a batch is sealed under this many bytes of readings (JSON)
MAX_ATTEMPTS = 5  # a batch the cloud does not accept (INTERNAL, UNKNOWN) this often is set aside


Refusal = tuple[str, str]  # (reading id, the cloud's reason) of a reading refused one by one


class Uploader(Protocol):
    async def upload(self, batch_id: str, readings: list[Reading]) -> Sequence[Refusal] | None:
        """Deliver a batch; return only once the cloud acknowledged ``batch_id``, with the
        readings it refused one by one (kept in ``dead_letter`` with the reason) or None."""


UploadReadings = Callable[[str, Sequence[Reading]], Awaitable["pb.Ack | None"]]


class _CallUploader:
    def __init__(self, upload_readings: UploadReadings) -> None:
        self._upload_readings = upload_readings
        self.rejected = 0  # readings the cloud refused one by one (logged; not sent again)

    async def upload(self, batch_id: str, readings: list[Reading]) -> list[Refusal] | None:
        ack = await self._upload_readings(batch_id, readings)
        if ack is None or not ack.rejected:
            return None
        self.rejected += len(ack.rejected)
        for r in ack.rejected[:20]:
            log.warning("readings_queue.reading_rejected", batch=batch_id, reading=r.reading_id,
                        position=r.position, reason=r.reason)
        if len(ack.rejected) > 20:
            log.warning("readings_queue.readings_rejected", batch=batch_id, count=len(ack.rejected))
        return [(r.reading_id, r.reason) for r in ack.rejected]


def grpc_uploader(upload_readings: UploadReadings) -> Uploader:
    """An ``Uploader`` over ``upload_readings(batch_id, readings)``.

    That is ``agent.channel.grpc_client.GrpcChannel.upload_readings`` (typed readings,
    ``ReadingsBatch`` version 2): it must return the acknowledgement only once the cloud
    acknowledged ``batch_id`` and raise otherwise (the queue then keeps the sealed batch and
    re-sends it, same id). Readings the acknowledgement names as refused are logged with the
    cloud's reason and not sent again (a bad value does not get better by retrying): they are
    kept in the queue's ``dead_letter`` table with that reason (``printgate agent dead-letters``).
    """
    return _CallUploader(upload_readings)


def unencodable(readings: Sequence[Reading]) -> list[Refusal]:
    """The readings of a batch the agent's own encoder (``reading_to_wire``) cannot turn into
    a wire message (a counter above the wire's int64, an index above int32, ...), with why.
    Such a reading can never be sent: it is set aside alone, and its batch goes without it."""
    bad: list[Refusal] = []
    for r in readings:
        try:
            reading_to_wire(r).SerializeToString()
        except Exception as exc:  # whatever the encoder raises, retrying cannot help
            bad.append((r.id, f"could not be encoded for the cloud ({type(exc).__name__}: {exc}); "
                              "a value out of the readings contract's range, not sent"))
    return bad


def _is_channel_error(exc: BaseException) -> bool:
    """The network or the cloud (retry, same batch); anything else failed here, on the agent."""
    return isinstance(exc, AgentUnavailable | OSError | TimeoutError) or getattr(exc, "permanent", None) is not None


@dataclass(frozen=True, slots=True)
class Drop:
    """Readings of one device and kind that were never queued or were pushed out, and why."""

    ip: str
    kind: str
    reason: str  # DROP_OVERFLOW or DROP_DISK_FULL
    count: int
    first_at: datetime
    last_at: datetime

    def to_dict(self) -> dict[str, object]:
        return {"ip": self.ip, "kind": self.kind, "reason": self.reason, "count": self.count,
                "first_at": self.first_at.isoformat(), "last_at": self.last_at.isoformat()}


REOPEN_AFTER_S = 5.0  # while the disk stays full, the queue file is reopened this often
DROP_OVERFLOW = "agent queue overflow"
DROP_CORRUPT = "agent queue corrupt"
DROP_DISK_FULL = "agent disk full"
DropKey = tuple[str, str, str]  # (ip, kind, reason)


def _is_corrupt(exc: BaseException) -> bool:
    """The queue file is damaged (SQLITE_CORRUPT, SQLITE_NOTADB): retrying it can never work."""
    if not isinstance(exc, sqlite3.DatabaseError):
        return False
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None and code & 0xFF in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
        return True
    text = str(exc).lower()
    return "malformed" in text or "not a database" in text


def _is_disk_full(exc: BaseException) -> bool:
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return True
    return isinstance(exc, sqlite3.Error) and any(
        word in str(exc).lower() for word in ("full", "disk i/o", "unable to open")
    )


class ReadingsQueue:
    """The sealed-batch queue with bounds (readings, bytes), drop accounting and disk-full degradation.

    When the queue is over ``max_queued`` readings or ``max_bytes`` of bodies, the oldest
    unsealed readings go first; sealed batches are never dropped. Every reading that is
    dropped, or refused because the disk is full, is counted per device, kind and reason
    (``drops()``) so the heartbeat can report the gap. While the disk is full, ``put``
    refuses without raising and ``degraded`` says why; the next ``put`` that can write
    clears it.
    """

    def __init__(self, path: Path, *, batch_size: int = 200, max_queued: int = 1_000_000,
                 max_bytes: int = 500_000_000, max_attempts: int = MAX_ATTEMPTS,
                 max_batch_bytes: int = MAX_BATCH_BYTES) -> None:
        self.path = path
        self.max_batch_bytes = max_batch_bytes
        self.max_attempts = max_attempts
        self._attempts: dict[str, int] = {}  # failed uploads per sealed batch the cloud did not accept
        self.last_quarantine: str | None = None  # why the newest batch was set aside
        self.stuck: str | None = None  # a batch failing on the agent itself (not the network), until it moves
        self.batch_size = batch_size
        self.max_queued = max_queued
        self.max_bytes = max_bytes
        self._disk_degraded: str | None = None  # "disk full: ..." while readings cannot be stored
        self.set_aside: str | None = None  # a corrupt queue file was moved aside (until restart)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = asyncio.Lock()
        self._db: sqlite3.Connection | None = None
        self._count = self._bytes = 0
        self.retry_after_s: float | None = None  # set when the cloud asked the last upload to wait
        self._drops: dict[DropKey, Drop] = {}
        self._unsaved_drops: set[DropKey] = set()  # counted while the disk was full
        self._loaded = False  # the file's drop totals are in self._drops
        self._reopen_at = 0.0
        try:
            try:
                self._conn()
            except sqlite3.DatabaseError as exc:
                if not _is_corrupt(exc):
                    raise
                self._move_corrupt_aside(exc)
                self._conn()
        except (sqlite3.Error, OSError) as exc:  # a full disk at start: run degraded, open later
            if not _is_disk_full(exc):
                raise
            self.degraded = f"disk full: the readings queue cannot be opened ({exc})"
            log.error("readings_queue.open_failed", path=str(path), error=str(exc))

    @property
    def degraded(self) -> str | None:
        """Why readings are (or were) being lost, or None: a full disk, a corrupt file moved aside."""
        parts = [p for p in (self._disk_degraded, self.set_aside) if p]
        return "; ".join(parts) if parts else None

    @degraded.setter
    def degraded(self, value: str | None) -> None:
        self._disk_degraded = value

    def _move_corrupt_aside(self, exc: BaseException) -> None:
        """The file is damaged: keep it for inspection as ``<name>.corrupt-<time>``, start a fresh queue,
        count the readings it held as dropped (device unknown) and stay degraded until restart."""
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            self._db = None
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        for suffix in ("", "-wal", "-shm"):
            src = Path(f"{self.path}{suffix}")
            if src.exists():
                src.replace(Path(f"{aside}{suffix}"))
        lost = self._count
        now = datetime.now(UTC)
        key = ("unknown", "unknown", DROP_CORRUPT)
        old = self._drops.get(key)
        if lost:
            self._drops[key] = Drop("unknown", "unknown", DROP_CORRUPT, lost, now, now) if old is None else Drop(
                "unknown", "unknown", DROP_CORRUPT, old.count + lost, old.first_at, now)
        self._unsaved_drops.update(self._drops)  # the fresh file gets every total counted so far
        self._loaded = True
        self._count = self._bytes = 0
        self.set_aside = (f"readings queue was corrupt ({exc}): moved aside to {aside.name} at "
                          f"{now.isoformat(timespec='seconds')}, {lost} queued readings lost")
        log.error("readings_queue.corrupt", path=str(self.path), moved_to=str(aside), lost=lost, error=str(exc))

    def _conn(self) -> sqlite3.Connection:
        """The open queue file, opening it first if an earlier attempt failed (a full disk)."""
        if self._db is not None:
            return self._db
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            # a bounded WAL: checkpoint every 256 pages and give the space back after it (the default
            # 1000 pages, never truncated, alone could fill a small disk; closing checkpoints it too)
            db.execute("PRAGMA wal_autocheckpoint=256")
            db.execute("PRAGMA journal_size_limit=1048576")
            db.executescript(SCHEMA)
            if "kind" not in {r[1] for r in db.execute("PRAGMA table_info(dead_letter)")}:  # files before it
                db.execute(f"ALTER TABLE dead_letter ADD COLUMN kind TEXT NOT NULL DEFAULT '{DEAD_BATCH}'")
            count, size = db.execute("SELECT count(*), coalesce(sum(length(body)), 0) FROM queued").fetchone()
            saved = {
                (ip, kind, reason): Drop(ip, kind, reason, n, datetime.fromisoformat(f), datetime.fromisoformat(la))
                for ip, kind, reason, n, f, la in db.execute(
                    "SELECT ip, kind, reason, count, first_at, last_at FROM drops")
            }
        except BaseException:
            db.close()
            raise
        if not self._loaded:  # first open: the file's totals plus what was counted before it could open
            for key, d in self._drops.items():
                old = saved.get(key)
                saved[key] = d if old is None else Drop(d.ip, d.kind, d.reason, old.count + d.count,
                                                        min(old.first_at, d.first_at), max(old.last_at, d.last_at))
            self._drops, self._loaded = saved, True
        self._db = db  # a reopen keeps the in-memory totals: they include the file's
        self._count, self._bytes = int(count), int(size)
        return db

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    async def __aenter__(self) -> ReadingsQueue:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    async def _run[T](self, fn: Callable[..., T], *args: object) -> T:
        """Run ``fn`` on the SQLite connection in a thread, one call at a time.

        Cancelling the caller does not stop the thread: the lock is held until the thread is
        done, or the next call would use the connection concurrently and corrupt its state.
        """
        async with self._lock:
            for attempt in (1, 2):
                call = asyncio.ensure_future(asyncio.to_thread(fn, *args))
                try:
                    return await asyncio.shield(call)
                except asyncio.CancelledError:
                    await asyncio.wait({call})
                    raise
                except sqlite3.DatabaseError as exc:  # a damaged file: set it aside, once, and go on afresh
                    if attempt == 2 or not _is_corrupt(exc):
                        raise
                    await asyncio.to_thread(self._move_corrupt_aside, exc)
            raise AssertionError("unreachable")

    # ---- drops --------------------------------------------------------------
    def _count_drop(self, ip: str, kinds: Sequence[str], reason: str, at: datetime) -> None:
        for kind in kinds or ("unknown",):
            key = (ip, str(kind), reason)
            old = self._drops.get(key)
            self._drops[key] = Drop(ip, str(kind), reason, 1, at, at) if old is None else Drop(
                ip, str(kind), reason, old.count + 1, min(old.first_at, at), max(old.last_at, at))
            self._unsaved_drops.add(key)

    def _save_drops(self, db: sqlite3.Connection) -> None:
        """Persist drop counts (inside the caller's transaction)."""
        db.executemany(
            "INSERT INTO drops (ip, kind, reason, count, first_at, last_at) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (ip, kind, reason) DO UPDATE SET count = excluded.count, "
            "first_at = excluded.first_at, last_at = excluded.last_at",
            [(d.ip, d.kind, d.reason, d.count, d.first_at.isoformat(), d.last_at.isoformat())
             for d in (self._drops[k] for k in self._unsaved_drops)],
        )

    def drops(self) -> list[Drop]:
        """Every reading lost since the queue file was made, per device, kind and reason."""
        return sorted(self._drops.values(), key=lambda d: (d.ip, d.kind, d.reason))

    @property
    def dropped(self) -> int:
        return sum(d.count for d in self._drops.values())

    # ---- put ------------------------------------------------------------------
    def _put_many(self, readings: Sequence[Reading]) -> None:
        rows = [(r.id, json.dumps(r.to_dict())) for r in readings]
        counted = dict(self._drops)
        try:
            self._store(self._conn(), rows)
        except (sqlite3.Error, OSError) as exc:
            if self._db is not None:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
            self._drops = counted  # the overflow drops of the failed transaction did not happen
            if not _is_disk_full(exc):
                raise
            now = datetime.now(UTC)
            for r in readings:
                self._count_drop(r.ip, [str(k) for k in r.kinds], DROP_DISK_FULL, r.taken_at or now)
            if self.degraded is None:
                log.error("readings_queue.disk_full", path=str(self.path), error=str(exc),
                          refused=len(readings))
                self._reopen_at = time.monotonic() + REOPEN_AFTER_S
            elif self._db is not None and time.monotonic() >= self._reopen_at:
                # a connection that hit a full disk can keep failing once space is back: start afresh
                with contextlib.suppress(sqlite3.Error):
                    self._db.close()
                self._db = None
                self._reopen_at = time.monotonic() + REOPEN_AFTER_S
            self.degraded = f"disk full: new readings are not stored ({exc})"
            return
        if self.degraded is not None:
            log.info("readings_queue.disk_recovered", path=str(self.path))
            self.degraded = None

    def _store(self, db: sqlite3.Connection, rows: list[tuple[str, str]]) -> None:
        incoming = sum(len(body) for _, body in rows)
        db.execute("BEGIN IMMEDIATE")
        dropped: list[tuple[int, str]] = []
        over_n = self._count + len(rows) - self.max_queued
        over_b = self._bytes + incoming - self.max_bytes
        if over_n > 0 or over_b > 0:
            # drop the oldest unsealed readings rather than stop polling (counted, reported)
            freed_n = freed_b = 0
            for seq, body in db.execute(
                "SELECT seq, body FROM queued WHERE batch_id IS NULL ORDER BY seq"
            ):
                if freed_n >= over_n and freed_b >= over_b:
                    break
                dropped.append((seq, body))
                freed_n += 1
                freed_b += len(body)
            db.executemany("DELETE FROM queued WHERE seq = ?", [(s,) for s, _ in dropped])
            now = datetime.now(UTC)
            for _, body in dropped:
                d = json.loads(body)
                self._count_drop(str(d["ip"]), [str(k) for k in d["kinds"]], DROP_OVERFLOW,
                                 datetime.fromisoformat(str(d["taken_at"])) if d.get("taken_at") else now)
            log.warning("readings_queue.full", dropped=len(dropped), max_queued=self.max_queued,
                        max_bytes=self.max_bytes)
        before = db.total_changes
        db.executemany("INSERT OR IGNORE INTO queued (id, body) VALUES (?, ?)", rows)
        inserted = db.total_changes - before
        if self._unsaved_drops:
            self._save_drops(db)
        db.execute("COMMIT")
        self._unsaved_drops.clear()
        if inserted == len(rows):
            self._count += inserted - len(dropped)
            self._bytes += incoming - sum(len(b) for _, b in dropped)
        else:  # some ids were queued already
            count, size = db.execute(
                "SELECT count(*), coalesce(sum(length(body)), 0) FROM queued").fetchone()
            self._count, self._bytes = int(count), int(size)

    async def put(self, reading: Reading) -> None:
        await self._run(self._put_many, [reading])

    async def put_many(self, readings: Sequence[Reading]) -> None:
        await self._run(self._put_many, list(readings))

    def _pending(self) -> int:
        try:
            db = self._conn()
        except (sqlite3.Error, OSError):  # cannot be opened (disk full): the last count known
            return self._count
        return int(db.execute("SELECT count(*) FROM queued").fetchone()[0])

    async def pending(self) -> int:
        return await self._run(self._pending)

    @property
    def queued_bytes(self) -> int:
        return self._bytes

    def _oldest(self) -> datetime | None:
        try:
            db = self._conn()
        except (sqlite3.Error, OSError):
            return None
        row = db.execute("SELECT body FROM queued ORDER BY seq LIMIT 1").fetchone()
        return None if row is None else datetime.fromisoformat(str(json.loads(row[0])["taken_at"]))

    async def oldest(self) -> datetime | None:
        """When the oldest reading still waiting was taken."""
        return await self._run(self._oldest)

    # ---- upload -----------------------------------------------------------------
    def _next_batch(self) -> tuple[str, list[Reading]] | None:
        db = self._conn()
        with db:
            db.execute("BEGIN IMMEDIATE")
            row = db.execute(
                "SELECT batch_id FROM queued WHERE batch_id IS NOT NULL ORDER BY seq LIMIT 1"
            ).fetchone()
            if row is None:
                seqs: list[int] = []
                size = 0  # size-aware sealing: a batch stays well under the channel's message limit
                for seq, length in db.execute(
                    "SELECT seq, length(body) FROM queued WHERE batch_id IS NULL ORDER BY seq LIMIT ?",
                    (self.batch_size,),
                ):
                    if seqs and size + length > self.max_batch_bytes:
                        break
                    seqs.append(seq)
                    size += length
                if not seqs:
                    return None
                batch_id = uuid.uuid4().hex
                db.executemany("UPDATE queued SET batch_id = ? WHERE seq = ?", [(batch_id, s) for s in seqs])
            else:
                batch_id = row[0]
            bodies = db.execute(
                "SELECT body FROM queued WHERE batch_id = ? ORDER BY seq", (batch_id,)
            ).fetchall()
        return batch_id, [Reading.from_dict(json.loads(b)) for (b,) in bodies]

    def _quarantine(self, batch_id: str, reason: str) -> int:
        """Move a batch the cloud will not accept to ``dead_letter`` (kept for the operator: nothing
        is deleted), so the batches after it flow again."""
        db = self._conn()
        with db:
            (n, size) = db.execute(
                "SELECT count(*), coalesce(sum(length(body)), 0) FROM queued WHERE batch_id = ?", (batch_id,)
            ).fetchone()
            db.execute("INSERT INTO dead_letter (id, body, batch_id, reason, at) SELECT id, body, batch_id, ?, ? "
                       "FROM queued WHERE batch_id = ?", (reason[:1000], datetime.now(UTC).isoformat(), batch_id))
            db.execute("DELETE FROM queued WHERE batch_id = ?", (batch_id,))
        self._count -= int(n)
        self._bytes -= int(size)
        return int(n)

    def _dead_letters(self) -> tuple[int, int]:
        try:
            (batches, readings) = self._conn().execute(
                "SELECT count(DISTINCT batch_id), count(*) FROM dead_letter WHERE kind = ?", (DEAD_BATCH,)).fetchone()
        except (sqlite3.Error, OSError):
            return (0, 0)
        return int(batches), int(readings)

    async def dead_letters(self) -> tuple[int, int]:
        """(batches, readings) set aside because the cloud would not accept them (whole batches;
        readings the cloud refused one by one are kept too but are no delivery problem)."""
        return await self._run(self._dead_letters)

    async def delivery_problem(self, *, last_delivery: datetime | None, now: datetime | None = None,
                               stale_after: timedelta = STALE_AFTER) -> str | None:
        """Why readings are not reaching the cloud, or None: batches set aside (dead letter), or
        readings waiting longer than ``stale_after`` with nothing delivered meanwhile. ``printgate
        agent status`` and the heartbeat report it; the agent is then not healthy."""
        now = now or datetime.now(UTC)
        problems = []
        batches, readings = await self.dead_letters()
        if self.stuck:
            problems.append(self.stuck)
        if batches:
            problems.append(f"{batches} readings batch(es) ({readings} readings) the cloud did not accept were set "
                            f"aside in the queue's dead_letter table (last: {self.last_quarantine or 'before restart'})")
        oldest = await self.oldest()
        if oldest is not None and now - oldest > stale_after and (
                last_delivery is None or now - last_delivery > stale_after):
            problems.append(f"nothing delivered since {last_delivery.isoformat() if last_delivery else 'start'}; "
                            f"the oldest queued reading is from {oldest.isoformat()}")
        return "; ".join(problems)[:900] or None

    def _ack(self, batch_id: str, refused: Sequence[Refusal] = ()) -> None:
        """The cloud has the batch: it leaves the queue; the readings it refused one by one go to
        ``dead_letter`` with the cloud's reason (same transaction)."""
        db = self._conn()
        with db:
            (n, size) = db.execute(
                "SELECT count(*), coalesce(sum(length(body)), 0) FROM queued WHERE batch_id = ?", (batch_id,)
            ).fetchone()
            if refused:
                at = datetime.now(UTC).isoformat()
                db.executemany(
                    "INSERT INTO dead_letter (id, body, batch_id, reason, at, kind) "
                    "SELECT id, body, batch_id, ?, ?, ? FROM queued WHERE batch_id = ? AND id = ?",
                    [(reason[:1000], at, DEAD_READING, batch_id, rid) for rid, reason in refused])
            db.execute("DELETE FROM queued WHERE batch_id = ?", (batch_id,))
        # max(0, ..): readings replayed from dead_letter by the CLI while this agent ran were not counted
        self._count = max(0, self._count - int(n))
        self._bytes = max(0, self._bytes - int(size))

    def _set_readings_aside(self, batch_id: str, refused: Sequence[Refusal]) -> None:
        """Readings of a sealed batch that can never be sent: to ``dead_letter`` (kind 'reading',
        with why) and out of the batch, one transaction; the batch keeps its id and the rest."""
        db = self._conn()
        with db:
            ids = [(batch_id, rid) for rid, _ in refused]
            n = size = 0
            for key in ids:
                row = db.execute("SELECT length(body) FROM queued WHERE batch_id = ? AND id = ?", key).fetchone()
                if row is not None:
                    n, size = n + 1, size + int(row[0])
            at = datetime.now(UTC).isoformat()
            db.executemany(
                "INSERT INTO dead_letter (id, body, batch_id, reason, at, kind) "
                "SELECT id, body, batch_id, ?, ?, ? FROM queued WHERE batch_id = ? AND id = ?",
                [(reason[:1000], at, DEAD_READING, batch_id, rid) for rid, reason in refused])
            db.executemany("DELETE FROM queued WHERE batch_id = ? AND id = ?", ids)
        self._count = max(0, self._count - int(n))
        self._bytes = max(0, self._bytes - int(size))

    async def flush(self, uploader: Uploader, *, max_batches: int = 1000) -> int:
        """Upload sealed/new batches until empty or an upload fails; returns readings sent.

        A failed upload leaves its batch sealed for the next call (same id). A local write
        that fails (disk full) stops this flush; an acknowledged batch that could not be
        deleted is re-sent later with its id and the cloud ignores it.
        """
        sent = 0
        for _ in range(max_batches):
            try:
                batch = await self._run(self._next_batch)
            except (sqlite3.Error, OSError) as exc:
                log.warning("readings_queue.seal_failed", error=str(exc))
                break
            if batch is None:
                break
            batch_id, readings = batch
            bad = unencodable(readings)
            if bad:  # set aside alone (kind 'reading', with why); the rest of the batch goes on
                try:
                    await self._run(self._set_readings_aside, batch_id, bad)
                except (sqlite3.Error, OSError) as exc:
                    log.warning("readings_queue.set_aside_failed", batch=batch_id, error=str(exc))
                    break
                log.error("readings_queue.readings_unencodable", batch=batch_id, count=len(bad),
                          readings=[rid for rid, _ in bad[:5]], reason=bad[0][1][:300],
                          hint="kept in the dead_letter table of the queue file (printgate agent dead-letters)")
                gone = {rid for rid, _ in bad}
                readings = [r for r in readings if r.id not in gone]
                if not readings:
                    continue
            try:
                refused = await uploader.upload(batch_id, readings)
            except Exception as exc:  # any failure: keep the sealed batch, retry later
                self.retry_after_s = getattr(exc, "retry_after_s", None)  # the cloud asked to slow down
                log.warning("readings_queue.upload_failed", batch=batch_id, count=len(readings), error=str(exc),
                            retry_after_s=self.retry_after_s)
                permanent = getattr(exc, "permanent", None)  # None: the network or a busy cloud (no limit)
                local = not _is_channel_error(exc)
                if local:  # failed on the agent (an encoder, a bug): a limited number of attempts, and shown
                    permanent = isinstance(exc, ValueError | TypeError | OverflowError)
                if permanent is None:
                    break
                attempts = self._attempts[batch_id] = self._attempts.get(batch_id, 0) + 1
                if not permanent and attempts < self.max_attempts:
                    if local:
                        self.stuck = (f"readings batch {batch_id} ({len(readings)} readings) failed on the agent "
                                      f"{attempts} time(s): {type(exc).__name__}: {exc}"[:500])
                    break
                self._attempts.pop(batch_id, None)
                self.stuck = None
                reason = f"after {attempts} attempt(s): {exc}"
                try:
                    n = await self._run(self._quarantine, batch_id, reason)
                except (sqlite3.Error, OSError) as qexc:
                    log.warning("readings_queue.quarantine_failed", batch=batch_id, error=str(qexc))
                    break
                self.last_quarantine = reason[:500]
                log.error("readings_queue.batch_quarantined", batch=batch_id, count=n, reason=reason[:500],
                          hint="kept in the dead_letter table of the queue file; later batches flow")
                continue
            self._attempts.pop(batch_id, None)
            self.stuck = None
            self.retry_after_s = None
            try:
                await self._run(self._ack, batch_id, refused or ())
            except (sqlite3.Error, OSError) as exc:
                log.warning("readings_queue.ack_failed", batch=batch_id, error=str(exc))
                break
            sent += len(readings)
        return sent
