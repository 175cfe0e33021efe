"""Issue 17 finding 1, the queue's end: a reading the agent's own encoder cannot send (a counter
above the wire's int64, as an agent before the parse-time check queued it) is set aside alone in
the queue's dead letters with why, and the rest of its batch reaches the cloud (a real agent
queue file, the real gRPC channel, fleet ingest, SQLite and PostgreSQL). A batch that keeps
failing on the agent itself is a delivery problem ``agent status`` shows, not a healthy agent."""

from __future__ import annotations

import asyncio
import sqlite3
from dataclasses import replace
from pathlib import Path

from agent.readings_queue import DEAD_READING, ReadingsQueue, grpc_uploader
from printgate.domain import CounterValue, Reading
from printgate.store.readings import readings_for
from tests.fleet.conftest import T0, reading_of
from tests.fleet.test_ingest_channel import Channel, agent_channel, channel

__all__ = ["channel"]

MAX64 = (1 << 64) - 1


async def test_an_unencodable_reading_is_dead_lettered_alone_and_its_batch_is_delivered(
    channel: Channel, tmp_path: Path,
) -> None:
    good = reading_of("jetdirect_m130nw", ip="127.0.20.15", at=T0)
    later = replace(good, id="r-later", taken_at=T0.replace(hour=9))
    huge = replace(good, id="r-max64", taken_at=T0.replace(hour=10),
                   counters=(CounterValue("marker.1.1.life", MAX64, "impressions"),))
    path = tmp_path / "readings.sqlite"
    async with agent_channel(channel) as ch, ReadingsQueue(path, batch_size=10) as queue:
        await queue.put_many([good, huge, later])
        sent = await asyncio.wait_for(queue.flush(grpc_uploader(ch.upload_readings)), 20)
        assert sent == 2
        assert await queue.pending() == 0
        assert await queue.dead_letters() == (0, 0)  # one reading, not a whole batch
        assert await queue.delivery_problem(last_delivery=None) is None
    stored = {r.id for r in await readings_for(channel.db, device_id="dev-m130")}
    assert {good.id, later.id} <= stored and huge.id not in stored
    with sqlite3.connect(path) as db:
        dead = db.execute("SELECT id, kind, reason FROM dead_letter").fetchall()
    assert [(rid, kind) for rid, kind, _ in dead] == [("r-max64", DEAD_READING)]
    assert "could not be encoded" in dead[0][2] and "out of range" in dead[0][2]


class _BrokenHere:
    """An uploader failing on the agent itself, before anything reaches the network."""

    def __init__(self) -> None:
        self.calls = 0

    async def upload(self, batch_id: str, readings: list[Reading]) -> None:
        self.calls += 1
        raise RuntimeError("encoder exploded")


async def test_a_batch_failing_on_the_agent_is_a_delivery_problem_and_is_set_aside_after_its_attempts(
    tmp_path: Path,
) -> None:
    r = reading_of("jetdirect_m130nw", ip="127.0.20.15", at=T0)
    up = _BrokenHere()
    async with ReadingsQueue(tmp_path / "q.sqlite", max_attempts=3) as queue:
        await queue.put(r)
        assert await queue.flush(up) == 0
        problem = await queue.delivery_problem(last_delivery=None)
        assert problem is not None and "failed on the agent" in problem and "encoder exploded" in problem
        for _ in range(2):
            await queue.flush(up)
        assert up.calls == 3 and await queue.pending() == 0
        assert await queue.dead_letters() == (1, 1)  # set aside: later batches flow; still shown
        problem = await queue.delivery_problem(last_delivery=None)
        assert problem is not None and "encoder exploded" in problem and "failed on the agent" not in problem
