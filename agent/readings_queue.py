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
import json
import sqlite3
import uuid
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Protocol

from printgate.domain import Reading
from printgate.logs import get_logger

log = get_logger("agent.readings_queue")

SCHEMA = """
CREATE TABLE IF NOT EXISTS queued (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    body TEXT NOT NULL,
    batch_id TEXT
);
CREATE INDEX IF NOT EXISTS queued_batch ON queued(batch_id);
"""


class Uploader(Protocol):
    async def upload(self, batch_id: str, readings: list[Reading]) -> None:
        """Deliver a batch; return only once the cloud acknowledged ``batch_id``."""


UploadReadings = Callable[[str, bytes], Awaitable[None]]


def batch_payload(readings: Sequence[Reading]) -> bytes:
    """The wire form of a batch: UTF-8 JSON ``{"readings": [Reading.to_dict(), ...]}``."""
    return json.dumps({"readings": [r.to_dict() for r in readings]}, separators=(",", ":")).encode()


class _CallUploader:
    def __init__(self, upload_readings: UploadReadings) -> None:
        self._upload_readings = upload_readings

    async def upload(self, batch_id: str, readings: list[Reading]) -> None:
        await self._upload_readings(batch_id, batch_payload(readings))


def grpc_uploader(upload_readings: UploadReadings) -> Uploader:
    """An ``Uploader`` over ``upload_readings(batch_id, payload)``.

    That is ``agent.channel.grpc_client.GrpcChannel.upload_readings``: it must
    return only once the cloud acknowledged ``batch_id`` and raise otherwise
    (the queue then keeps the sealed batch and re-sends it, same id).
    """
    return _CallUploader(upload_readings)


class ReadingsQueue:
    def __init__(self, path: Path, *, batch_size: int = 200, max_queued: int = 1_000_000) -> None:
        self.path = path
        self.batch_size = batch_size
        self.max_queued = max_queued
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)
        self._lock = asyncio.Lock()

    def close(self) -> None:
        self._db.close()

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
            call = asyncio.ensure_future(asyncio.to_thread(fn, *args))
            try:
                return await asyncio.shield(call)
            except asyncio.CancelledError:
                await asyncio.wait({call})
                raise

    def _put_many(self, readings: Sequence[Reading]) -> None:
        with self._db:  # one transaction
            self._db.execute("BEGIN IMMEDIATE")
            (n,) = self._db.execute("SELECT count(*) FROM queued").fetchone()
            if n + len(readings) > self.max_queued:
                # drop oldest unsealed readings rather than stop polling (recorded)
                drop = n + len(readings) - self.max_queued
                self._db.execute(
                    "DELETE FROM queued WHERE seq IN (SELECT seq FROM queued WHERE batch_id IS NULL ORDER BY seq LIMIT ?)",
                    (drop,),
                )
                log.warning("readings_queue.full", dropped=drop)
            self._db.executemany(
                "INSERT OR IGNORE INTO queued (id, body) VALUES (?, ?)",
                [(r.id, json.dumps(r.to_dict())) for r in readings],
            )

    async def put(self, reading: Reading) -> None:
        await self._run(self._put_many, [reading])

    async def put_many(self, readings: Sequence[Reading]) -> None:
        await self._run(self._put_many, list(readings))

    def _pending(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM queued").fetchone()[0])

    async def pending(self) -> int:
        return await self._run(self._pending)

    def _next_batch(self) -> tuple[str, list[Reading]] | None:
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            row = self._db.execute(
                "SELECT batch_id FROM queued WHERE batch_id IS NOT NULL ORDER BY seq LIMIT 1"
            ).fetchone()
            if row is None:
                seqs = [s for (s,) in self._db.execute(
                    "SELECT seq FROM queued WHERE batch_id IS NULL ORDER BY seq LIMIT ?", (self.batch_size,)
                )]
                if not seqs:
                    return None
                batch_id = uuid.uuid4().hex
                self._db.executemany("UPDATE queued SET batch_id = ? WHERE seq = ?", [(batch_id, s) for s in seqs])
            else:
                batch_id = row[0]
            bodies = self._db.execute(
                "SELECT body FROM queued WHERE batch_id = ? ORDER BY seq", (batch_id,)
            ).fetchall()
        return batch_id, [Reading.from_dict(json.loads(b)) for (b,) in bodies]

    def _ack(self, batch_id: str) -> None:
        with self._db:
            self._db.execute("DELETE FROM queued WHERE batch_id = ?", (batch_id,))

    async def flush(self, uploader: Uploader, *, max_batches: int = 1000) -> int:
        """Upload sealed/new batches until empty or an upload fails; returns readings sent.

        A failed upload leaves its batch sealed for the next call (same id).
        """
        sent = 0
        for _ in range(max_batches):
            batch = await self._run(self._next_batch)
            if batch is None:
                break
            batch_id, readings = batch
            try:
                await uploader.upload(batch_id, readings)
            except Exception as exc:  # any failure: keep the sealed batch, retry later
                log.warning("readings_queue.upload_failed", batch=batch_id, count=len(readings), error=str(exc))
                break
            await self._run(self._ack, batch_id)
            sent += len(readings)
        return sent
