"""Store-and-forward: cloud killed mid-upload, restarted, agent restarted: exactly once."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from agent.readings_queue import ReadingsQueue
from fleet.ingest import ingest_batch
from lab.ports import free_tcp_port
from printgate.domain import CounterValue, Reading, ReadingKind, SupplyLevel, SupplyState
from printgate.errors import AgentUnavailable
from printgate.store.db import Database
from printgate.store.readings import count_readings, readings_for

AGENT = "agent-saf"


class CloudEndpoint:
    """The cloud ingestion function behind a real HTTP socket; can lose acks or die."""

    def __init__(self, db: Database, port: int) -> None:
        self.db, self.port = db, port
        self.lose_ack_of_next = False
        self.duplicates = 0
        self.runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        readings = [Reading.from_dict(r) for r in body["readings"]]
        new = await ingest_batch(self.db, AGENT, body["batch_id"], readings)
        self.duplicates += not new
        if self.lose_ack_of_next:  # stored, but the agent never hears back
            self.lose_ack_of_next = False
            assert request.transport is not None
            request.transport.abort()
            raise asyncio.CancelledError
        return web.json_response({"ack": body["batch_id"], "new": new})

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/batches", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def kill(self) -> None:
        assert self.runner is not None
        await self.runner.cleanup()


class HttpUploader:
    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}/batches"

    async def upload(self, batch_id: str, readings: list[Reading]) -> None:
        payload = {"batch_id": batch_id, "readings": [r.to_dict() for r in readings]}
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as s, \
                    s.post(self.url, json=payload) as resp:
                data = await resp.json()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise AgentUnavailable(f"cloud unreachable: {exc}") from exc
        if data.get("ack") != batch_id:
            raise AgentUnavailable(f"cloud did not acknowledge batch {batch_id}")


def _reading(n: int) -> Reading:
    return Reading(
        id=uuid.uuid4().hex, ip=f"127.0.20.{11 + n % 10}",
        taken_at=datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=n),
        kinds=(ReadingKind.COUNTERS, ReadingKind.SUPPLIES), serial=f"SN{n % 10}",
        counters=(CounterValue("marker.1.1.life", 1000 + n),),
        supplies=(SupplyLevel(1, "Black", "toner", "black", "percent", 100, n % 100),
                  SupplyLevel(2, "Waste", "wasteToner", None, "unknown", None, None, SupplyState.SOME_REMAINING)),
    )


async def test_every_reading_arrives_exactly_once_across_cloud_and_agent_restarts(
    db: Database, tmp_path: Path
) -> None:
    port = free_tcp_port()
    qpath = tmp_path / "agent" / "queue.sqlite"
    readings = [_reading(n) for n in range(230)]
    queue = ReadingsQueue(qpath, batch_size=50)
    await queue.put_many(readings[:150])
    cloud = CloudEndpoint(db, port)
    uploader = HttpUploader(port)

    # cloud is down: nothing is lost, nothing sent
    assert await queue.flush(uploader) == 0
    assert await queue.pending() == 150

    await cloud.start()
    cloud.lose_ack_of_next = True  # first batch stored but its ack is lost
    assert await queue.flush(uploader) == 0
    assert await count_readings(db, AGENT) == 50
    sent = await queue.flush(uploader)  # same batch id re-sent: ignored; then the rest
    assert sent == 150 and cloud.duplicates == 1

    # more readings while the cloud dies; the agent restarts with its file
    await queue.put_many(readings[150:])
    await cloud.kill()
    assert await queue.flush(uploader) == 0
    queue.close()
    queue = ReadingsQueue(qpath, batch_size=50)
    assert await queue.pending() == 80
    cloud = CloudEndpoint(db, port)
    await cloud.start()
    try:
        assert await queue.flush(uploader) == 80
        assert await queue.pending() == 0
        assert await count_readings(db, AGENT) == 230
        stored = await readings_for(db, agent_ids=[AGENT], limit=1000)
        assert sorted(r.id for r in stored) == sorted(r.id for r in readings)
        by_id = {r.id: r for r in readings}
        assert all(by_id[r.id] == r for r in stored)  # round-trips field for field
    finally:
        await cloud.kill()
        queue.close()


async def test_duplicate_batch_is_ignored_by_the_cloud(db: Database) -> None:
    batch = [_reading(1), _reading(2)]
    assert await ingest_batch(db, AGENT, "batch-1", batch) is True
    assert await ingest_batch(db, AGENT, "batch-1", batch) is False
    assert await count_readings(db, AGENT) == 2


async def test_a_cancelled_queue_call_keeps_the_connection_until_its_thread_is_done(tmp_path: Path) -> None:
    """Shutdown cancels the upload loop mid-call; the next call must not share the connection."""
    queue = ReadingsQueue(tmp_path / "q.sqlite")
    spans: list[tuple[str, float, float]] = []
    inside = threading.Event()

    def slow() -> None:
        start = time.monotonic()
        inside.set()
        time.sleep(0.3)
        spans.append(("slow", start, time.monotonic()))

    def quick() -> None:
        now = time.monotonic()
        spans.append(("quick", now, now))

    task = asyncio.create_task(queue._run(slow))
    await asyncio.to_thread(inside.wait, 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await queue._run(quick)
    queue.close()
    (slow_span,) = [s for s in spans if s[0] == "slow"]
    (quick_span,) = [s for s in spans if s[0] == "quick"]
    assert quick_span[1] >= slow_span[2], "the next call ran while the cancelled one still used the connection"
