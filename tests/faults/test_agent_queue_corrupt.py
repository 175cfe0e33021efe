"""A corrupted readings queue (random bytes written into the file after a WAL checkpoint, as ``dd``
would): the agent must not lose every later reading while saying healthy. The damaged file is moved
aside as ``readings.sqlite.corrupt-<time>``, a fresh queue takes new readings, the readings the old file
held are counted as dropped, and the queue says it is degraded."""

from __future__ import annotations

import os
import re
import sqlite3
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from agent.readings_queue import DROP_CORRUPT, ReadingsQueue
from printgate.domain import Reading, ReadingKind

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def reading(n: int) -> Reading:
    return Reading(id=uuid.uuid4().hex, ip="10.0.0.9", taken_at=T0 + timedelta(minutes=n),
                   kinds=(ReadingKind.COUNTERS,), errors=("x" * 200,))


class Collect:
    def __init__(self) -> None:
        self.readings: list[Reading] = []

    async def upload(self, batch_id: str, readings: list[Reading]) -> None:
        self.readings += readings


def corrupt(path: Path) -> None:
    with sqlite3.connect(path) as other:  # what the agent's own autocheckpoint does, at once
        other.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    with open(path, "r+b") as f:
        f.seek(8192)
        f.write(os.urandom(65536))


async def test_a_corrupt_queue_is_moved_aside_counted_and_reported_degraded(tmp_path: Path) -> None:
    path = tmp_path / "readings.sqlite"
    q = ReadingsQueue(path, batch_size=50)
    for n in range(300):
        await q.put(reading(n))
    assert q.degraded is None
    corrupt(path)

    for n in range(300, 310):  # the next poll rounds
        await q.put(reading(n))

    aside = list(tmp_path.glob("readings.sqlite.corrupt-*"))
    assert aside, sorted(p.name for p in tmp_path.iterdir())
    assert await q.pending() == 10, "new readings are not stored after the corruption"
    lost = {d.reason: d.count for d in q.drops()}
    assert lost.get(DROP_CORRUPT) == 300
    assert q.degraded and "corrupt" in q.degraded and re.sub(r"-(wal|shm)$", "", aside[0].name) in q.degraded
    sink = Collect()
    assert await q.flush(sink) == 10
    q.close()

    again = ReadingsQueue(path)  # the loss is remembered in the fresh file
    assert {d.reason: d.count for d in again.drops()}.get(DROP_CORRUPT) == 300
    again.close()


async def test_a_queue_corrupt_at_start_is_moved_aside_and_the_agent_starts(tmp_path: Path) -> None:
    path = tmp_path / "readings.sqlite"
    q = ReadingsQueue(path)
    for n in range(300):
        await q.put(reading(n))
    q.close()
    with open(path, "r+b") as f:  # the header too: "file is not a database"
        f.write(os.urandom(4096))
    fresh = ReadingsQueue(path)
    await fresh.put(reading(400))
    assert await fresh.pending() == 1
    assert list(tmp_path.glob("readings.sqlite.corrupt-*"))
    assert fresh.degraded and "corrupt" in fresh.degraded
    fresh.close()
