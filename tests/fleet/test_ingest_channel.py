"""Readings through the real agent channel (mutual TLS gRPC) into the fleet's ingest:
typed readings (v2) and a recorded v1 batch both land, a bad reading is refused on its own
with the reason in the acknowledgement, and when ingest is behind (a slowed store) the agent
is told to slow down and keeps its batch queued."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from agent.channel.enroll import EnrolledIdentity, enroll
from agent.channel.grpc_client import GrpcChannel
from agent.errors import CloudBusy
from agent.readings_queue import ReadingsQueue, grpc_uploader
from fleet.ingest import FleetIngest
from gateway.channel.ca import AgentCA
from gateway.channel.enrolment import ChannelFacts
from gateway.channel.grpc_server import AgentChannelServer
from gateway.channel.handlers import ChannelHandlers
from gateway.channel.hub import AgentHub
from lab.ports import free_tcp_port
from printgate.domain import AgentId, Device, DeviceId, DeviceIdentity, Reading, SiteId
from printgate.store import channel as channel_store
from printgate.store import devices as device_store
from printgate.store.db import Database, migrate
from printgate.store.readings import count_readings, readings_for
from printgate.testing.audit import ReadableAuditLog
from printgate.testing.tenancy import Tenancy
from tests.fleet.conftest import M130_SERIAL, T0, reading_of

FIXTURE = Path(__file__).parent / "fixtures" / "v1_batch.json"


class _GatedEngine:
    """The database's engine; ``connect`` waits at the gate first (ingest's writer keeps a
    connection of its own on PostgreSQL rather than taking a pooled one per transaction)."""

    def __init__(self, engine: AsyncEngine, db: GatedDatabase) -> None:
        self._engine, self._db = engine, db

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)

    async def connect(self) -> AsyncConnection:
        await self._db.wait_at_gate()
        return await self._engine.connect()


class GatedDatabase(Database):
    """The real database; while ``gate`` is closed every transaction waits before it starts (a slow store)."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.engine = _GatedEngine(self.engine, self)  # type: ignore[assignment]
        self.gate = asyncio.Event()
        self.gate.set()
        self.waiting = 0

    async def wait_at_gate(self) -> None:
        self.waiting += 1
        try:
            await self.gate.wait()
        finally:
            self.waiting -= 1

    @asynccontextmanager
    async def transaction(self, bind: AsyncConnection | None = None) -> AsyncIterator[AsyncSession]:
        if bind is None:  # a held connection passed the gate when it was taken (_GatedEngine)
            await self.wait_at_gate()
        async with super().transaction(bind) as s:
            yield s


@dataclass
class Channel:
    db: GatedDatabase
    ingest: FleetIngest
    server: AgentChannelServer
    identity: EnrolledIdentity


@pytest.fixture
async def channel(database_url: str, tmp_path: Path) -> AsyncIterator[Channel]:
    await migrate(database_url)
    db = GatedDatabase(database_url)
    try:
        await Tenancy().chain(dealer="d1", customer="c1", site="s1").save(db)
        ingest = FleetIngest(db, max_in_flight=1, retry_after_s=7)

        async def ignore(*_: object) -> None:
            return None

        ca = AgentCA.load_or_create(tmp_path / "ca")
        server = AgentChannelServer(
            "127.0.0.1", free_tcp_port(), ca=ca, db=db, audit=ReadableAuditLog(db, None), hub=AgentHub(ca.command_key),
            handlers=ChannelHandlers(on_inventory=ignore, on_readings=ingest.answer, on_presence=ignore),
            enrol_port=free_tcp_port(),
            facts=ChannelFacts(relay_address="127.0.0.1:8422", relay_host_key_fingerprint="SHA256:test"))
        await server.start()
        try:
            async with db.transaction() as s:
                token = await channel_store.create_enrolment_token(s, "s1", ttl=timedelta(minutes=5),
                                                             created_by="admin@d1.test")
            identity = await enroll(server.enrol_target, token, tmp_path / "agent", ca_cert_pem=ca.cert_pem)
            async with db.transaction() as s:
                await device_store.add_device(s, Device(DeviceId("dev-m130"), SiteId("s1"), AgentId(identity.agent_id),
                                                        "127.0.20.15", DeviceIdentity(serial=M130_SERIAL)), now=T0)
            yield Channel(db, ingest, server, identity)
        finally:
            await server.aclose()
    finally:
        await db.aclose()


@asynccontextmanager
async def agent_channel(c: Channel) -> AsyncIterator[GrpcChannel]:
    ch = GrpcChannel(c.server.target, c.identity, rpc_timeout=10)
    await ch.connect()
    try:
        yield ch
    finally:
        await ch.aclose()


async def test_typed_readings_are_stored_and_a_bad_reading_is_refused_alone_with_its_reason(channel: Channel) -> None:
    good = reading_of("lab-jetdirect_m130nw-alerts", ip="127.0.20.15", at=T0)
    negative = replace(reading_of("jetdirect_m130nw", ip="127.0.20.15", at=T0),
                       counters=(replace(good.counters[0], value=-5),))
    async with agent_channel(channel) as ch:
        ack = await ch.upload_readings("b-typed", [good, negative], deadline_s=20)
        again = await ch.upload_readings("b-typed", [good, negative], deadline_s=20)
    assert ack.stored == 1 and not ack.duplicate
    assert [(r.position, r.reading_id) for r in ack.rejected] == [(1, negative.id)]
    assert "counter" in ack.rejected[0].reason and "-5" in ack.rejected[0].reason
    assert again.duplicate and again.stored == 0  # one idempotency record: the batch ledger
    assert await readings_for(channel.db, device_id="dev-m130") == [good]


async def test_a_recorded_v1_batch_from_an_older_agent_still_ingests(channel: Channel) -> None:
    payload = FIXTURE.read_bytes()
    expected = [Reading.from_dict(d) for d in json.loads(payload)["readings"]]
    async with agent_channel(channel) as ch:
        ack = await ch.upload_readings("b-v1", payload, deadline_s=20)  # bytes: ReadingsBatch version 1
    assert ack.stored == 3 and not ack.rejected
    stored = await readings_for(channel.db, agent_ids=[channel.identity.agent_id])
    assert sorted(stored, key=lambda r: r.id) == sorted(expected, key=lambda r: r.id)
    # the M130 readings map by serial (the Canon of the recording has no device here: kept, unmapped)
    assert {r.id for r in await readings_for(channel.db, device_id="dev-m130")} == {
        r.id for r in expected if r.serial == M130_SERIAL}


async def test_when_ingest_is_behind_the_agent_is_told_to_slow_down_and_keeps_its_batch(
    channel: Channel, tmp_path: Path,
) -> None:
    first = reading_of("jetdirect_m130nw", ip="127.0.20.15", at=T0)
    later = reading_of("jetdirect_m130nw", ip="127.0.20.15", at=T0.replace(hour=9))
    channel.db.gate.clear()  # the store is slow: the first batch stays in flight
    async with agent_channel(channel) as ch, ReadingsQueue(tmp_path / "q.sqlite", batch_size=1) as queue:
        held = asyncio.create_task(ch.upload_readings("b-held", [first], deadline_s=30))
        for _ in range(200):
            if channel.db.waiting:
                break
            await asyncio.sleep(0.05)
        assert channel.ingest.in_flight == 1
        await queue.put(later)
        uploader = grpc_uploader(ch.upload_readings)
        assert await asyncio.wait_for(queue.flush(uploader), 10) == 0  # refused at once, not queued in the cloud
        assert queue.retry_after_s == 7 and await queue.pending() == 1  # kept, with the cloud's hint
        with pytest.raises(CloudBusy) as busy:
            await ch.upload_readings("b-other", [later], deadline_s=10)
        assert busy.value.retry_after_s == 7 and "behind" in busy.value.message
        assert not held.done()  # acknowledged only once stored
        channel.db.gate.set()
        ack = await asyncio.wait_for(held, 20)
        assert ack.stored == 1
        assert await queue.flush(uploader) == 1  # the agent's retry lands once ingest caught up
        assert queue.retry_after_s is None and await queue.pending() == 0
    assert channel.ingest.refused_busy == 2 and channel.ingest.in_flight == 0
    assert await count_readings(channel.db) == 2
