"""What the cloud did not take, kept in the readings queue's ``dead_letter`` table: inspect,
replay, drop (``printgate agent dead-letters``).

Two kinds of entries, both grouped by the batch that carried them:

- ``batch``: a whole batch the cloud did not accept (``INVALID_ARGUMENT``, over the message
  limit, or ``INTERNAL``/``UNKNOWN`` after ``max_attempts``), set aside so later batches flow;
- ``reading``: a reading the cloud refused one by one in its acknowledgement (a bad value),
  with the cloud's reason; the rest of its batch was stored.

``replay`` puts the readings back into the queue as one new sealed batch (a new batch id: the
cloud's ledger may know the old one with other content); the running agent uploads it with
its next flush, and the cloud stores each reading once whatever was delivered before (reading
ids). Use it after the cloud or the agent was fixed. ``drop`` deletes them for good.

Stdlib ``sqlite3`` only (the agent ships without SQLAlchemy); safe while ``agent run`` runs
(WAL, a busy timeout, one short transaction per call).
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from agent.errors import DeadLetterUnknown
from agent.readings_queue import DEAD_BATCH, DEAD_READING, SCHEMA

QUEUE_FILE = "readings.sqlite"  # in the agent's data dir


@dataclass(frozen=True, slots=True)
class DeadBatch:
    batch_id: str
    kind: str  # DEAD_BATCH or DEAD_READING
    readings: int
    reasons: tuple[str, ...]  # distinct, most frequent first
    first_at: str
    last_at: str

    def to_dict(self) -> dict[str, object]:
        return {"batch_id": self.batch_id, "kind": self.kind, "readings": self.readings,
                "reasons": list(self.reasons), "first_at": self.first_at, "last_at": self.last_at}


@dataclass(frozen=True, slots=True)
class DeadReading:
    reading_id: str
    ip: str
    serial: str | None
    kinds: tuple[str, ...]
    taken_at: str
    reason: str
    at: str

    def to_dict(self) -> dict[str, object]:
        return {"reading_id": self.reading_id, "ip": self.ip, "serial": self.serial, "kinds": list(self.kinds),
                "taken_at": self.taken_at, "reason": self.reason, "set_aside_at": self.at}


class DeadLetters:
    """The ``dead_letter`` table of one agent's queue file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def of_data_dir(cls, data_dir: Path) -> DeadLetters:
        return cls(data_dir / QUEUE_FILE)

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        if not self.path.exists():
            raise DeadLetterUnknown(f"no readings queue at {self.path}: is this the agent's data dir "
                                    "(--data-dir, or [agent] data_dir of --config)?")
        db = sqlite3.connect(self.path, timeout=10, isolation_level=None)
        try:
            db.executescript(SCHEMA)
            if "kind" not in {r[1] for r in db.execute("PRAGMA table_info(dead_letter)")}:
                db.execute(f"ALTER TABLE dead_letter ADD COLUMN kind TEXT NOT NULL DEFAULT '{DEAD_BATCH}'")
            yield db
        finally:
            db.close()

    def batches(self) -> list[DeadBatch]:
        """Every batch with dead letters, oldest first."""
        with self._db() as db:
            rows = db.execute(
                "SELECT batch_id, kind, count(*), min(at), max(at) FROM dead_letter "
                "GROUP BY batch_id, kind ORDER BY min(at), batch_id").fetchall()
            reasons: dict[str, list[str]] = {}
            for batch_id, reason, _ in db.execute(
                    "SELECT batch_id, reason, count(*) AS n FROM dead_letter GROUP BY batch_id, reason "
                    "ORDER BY n DESC, reason"):
                reasons.setdefault(batch_id, []).append(reason)
        return [DeadBatch(b, kind, int(n), tuple(reasons.get(b, ())), first, last) for b, kind, n, first, last in rows]

    def resolve(self, wanted: str) -> str:
        """The batch id ``wanted`` names: the whole id or a unique prefix of it."""
        with self._db() as db:
            ids = [r[0] for r in db.execute(
                "SELECT DISTINCT batch_id FROM dead_letter WHERE substr(batch_id, 1, ?) = ?", (len(wanted), wanted))]
        if wanted in ids:
            return wanted
        if len(ids) == 1 and wanted:
            return str(ids[0])
        if not ids:
            raise DeadLetterUnknown(f"no dead-letter batch {wanted!r}: `printgate agent dead-letters list` "
                                    "shows the batch ids")
        raise DeadLetterUnknown(f"{wanted!r} names {len(ids)} batches ({', '.join(sorted(ids)[:5])}...): "
                                "give more of the id")

    def readings(self, batch_id: str) -> list[DeadReading]:
        """The readings of one batch with the reason each was set aside."""
        batch_id = self.resolve(batch_id)
        with self._db() as db:
            rows = db.execute("SELECT id, body, reason, at FROM dead_letter WHERE batch_id = ? ORDER BY rowid",
                              (batch_id,)).fetchall()
        out = []
        for rid, body, reason, at in rows:
            try:
                d = json.loads(body)
            except ValueError:
                d = {}
            out.append(DeadReading(rid, str(d.get("ip", "?")), d.get("serial"), tuple(str(k) for k in d.get("kinds", ())),
                                   str(d.get("taken_at", "?")), reason, at))
        return out

    def replay(self, batch_id: str) -> tuple[str, int, int]:
        """Put the batch's readings back into the queue as one new sealed batch; returns (new batch
        id, readings queued, readings already queued and left as they were)."""
        batch_id = self.resolve(batch_id)
        new_id = uuid.uuid4().hex
        with self._db() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                (n,) = db.execute("SELECT count(*) FROM dead_letter WHERE batch_id = ?", (batch_id,)).fetchone()
                before = db.total_changes
                db.execute("INSERT OR IGNORE INTO queued (id, body, batch_id) SELECT id, body, ? FROM dead_letter "
                           "WHERE batch_id = ? ORDER BY rowid", (new_id, batch_id))
                queued = db.total_changes - before
                db.execute("DELETE FROM dead_letter WHERE batch_id = ?", (batch_id,))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return new_id, queued, int(n) - queued

    def drop(self, batch_id: str) -> int:
        """Delete the batch's dead letters for good; returns how many readings went."""
        batch_id = self.resolve(batch_id)
        with self._db() as db:
            return db.execute("DELETE FROM dead_letter WHERE batch_id = ?", (batch_id,)).rowcount


__all__ = ["DEAD_BATCH", "DEAD_READING", "DeadBatch", "DeadLetters", "DeadReading"]
