"""The agent's readings queue: bounded by readings and bytes, every loss counted per device and kind,
a full disk degrades it (sealed readings kept) and it recovers by itself when space returns."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from agent.readings_queue import DROP_DISK_FULL, DROP_OVERFLOW, ReadingsQueue
from printgate.domain import Reading, ReadingKind
from tests.faults.conftest import fill

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def reading(ip: str, kind: ReadingKind, n: int, *, pad: int = 0) -> Reading:
    return Reading(id=uuid.uuid4().hex, ip=ip, taken_at=T0 + timedelta(minutes=n), kinds=(kind,),
                   errors=("x" * pad,) if pad else ())


class Collect:
    def __init__(self) -> None:
        self.batches: dict[str, list[Reading]] = {}

    async def upload(self, batch_id: str, readings: list[Reading]) -> None:
        self.batches[batch_id] = readings


async def test_overflow_by_count_drops_oldest_and_counts_per_device_and_kind(tmp_path: Path) -> None:
    q = ReadingsQueue(tmp_path / "q.sqlite", max_queued=10, batch_size=4)
    for n in range(8):
        await q.put(reading("10.0.0.1", ReadingKind.SUPPLIES, n))
    for n in range(8, 15):
        await q.put(reading("10.0.0.2", ReadingKind.COUNTERS, n))
    assert await q.pending() == 10
    drops = {(d.ip, d.kind, d.reason): d for d in q.drops()}
    assert set(drops) == {("10.0.0.1", "supplies", DROP_OVERFLOW)}
    assert drops[("10.0.0.1", "supplies", DROP_OVERFLOW)].count == 5
    assert drops[("10.0.0.1", "supplies", DROP_OVERFLOW)].first_at == T0
    assert q.dropped == 5
    assert await q.oldest() == T0 + timedelta(minutes=5)
    q.close()
    again = ReadingsQueue(tmp_path / "q.sqlite", max_queued=10)  # counts survive a restart
    assert again.dropped == 5 and await again.pending() == 10
    again.close()


async def test_overflow_by_bytes_never_drops_a_sealed_batch(tmp_path: Path) -> None:
    q = ReadingsQueue(tmp_path / "q.sqlite", max_bytes=20_000, batch_size=3)
    for n in range(3):
        await q.put(reading("10.0.0.1", ReadingKind.ALERTS, n, pad=2000))

    class Down:
        async def upload(self, batch_id: str, readings: list[Reading]) -> None:
            raise OSError("cloud down")

    await q.flush(Down())  # seals the first 3
    for n in range(3, 20):
        await q.put(reading("10.0.0.1", ReadingKind.ALERTS, n, pad=2000))
    assert q.queued_bytes <= 20_000
    sent = Collect()
    await q.flush(sent)
    first = next(iter(sent.batches.values()))
    assert [r.taken_at for r in first] == [T0 + timedelta(minutes=n) for n in range(3)]
    received = sum(len(b) for b in sent.batches.values())
    assert received + q.dropped == 20
    assert {d.reason for d in q.drops()} == {DROP_OVERFLOW}


async def test_full_disk_degrades_keeps_sealed_readings_and_recovers(tiny_disk: Path) -> None:
    q = ReadingsQueue(tiny_disk / "readings.sqlite", batch_size=5)
    for n in range(5):
        await q.put(reading("10.0.0.1", ReadingKind.SUPPLIES, n))
    filler = fill(tiny_disk)
    refused = 0
    for n in range(5, 400):  # until the disk is really full (SQLite pages have some slack)
        await q.put(reading("10.0.0.1", ReadingKind.SUPPLIES, n, pad=3000))
        if q.degraded:
            refused += 1
            if refused >= 3:
                break
    assert q.degraded is not None and "disk full" in q.degraded
    stored_while_filling = await q.pending()
    lost = {(d.ip, d.kind, d.reason): d.count for d in q.drops()}
    assert lost == {("10.0.0.1", "supplies", DROP_DISK_FULL): refused}

    filler.unlink()  # space returns: the next reading is stored, no restart
    await q.put(reading("10.0.0.1", ReadingKind.SUPPLIES, 999))
    assert q.degraded is None
    sent = Collect()
    await q.flush(sent)
    got = [r for b in sent.batches.values() for r in b]
    assert len(got) == stored_while_filling + 1
    assert len({r.id for r in got}) == len(got)
    assert q.dropped == refused  # the disk-full drops are now on disk too
    q.close()
    assert ReadingsQueue(tiny_disk / "readings.sqlite").dropped == refused


async def test_a_queue_opened_on_a_full_disk_runs_degraded_and_opens_when_space_returns(tiny_disk: Path) -> None:
    q = ReadingsQueue(tiny_disk / "readings.sqlite")
    for n in range(3):
        await q.put(reading("10.0.0.1", ReadingKind.COUNTERS, n))
    q.close()
    filler = fill(tiny_disk)
    restarted = ReadingsQueue(tiny_disk / "readings.sqlite")  # the agent restarted on a full disk
    assert restarted.degraded is not None and "disk full" in restarted.degraded
    await restarted.put(reading("10.0.0.1", ReadingKind.COUNTERS, 3))
    assert restarted.dropped == 1
    filler.unlink()
    await restarted.put(reading("10.0.0.1", ReadingKind.COUNTERS, 4))
    assert restarted.degraded is None
    assert await restarted.pending() == 4  # the three kept from before and the new one
    assert [(d.reason, d.count) for d in restarted.drops()] == [(DROP_DISK_FULL, 1)]
    restarted.close()
    assert ReadingsQueue(tiny_disk / "readings.sqlite").dropped == 1
