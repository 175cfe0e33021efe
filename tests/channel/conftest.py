"""Channel fixtures: one SQLite store, agent CA, hub and mTLS gRPC gateway per test run."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.channel.enroll import EnrolledIdentity, enroll
from gateway.channel.ca import AgentCA
from gateway.channel.crl import CrlPublisher
from gateway.channel.enrolment import ChannelFacts
from gateway.channel.grpc_server import AgentChannelServer
from gateway.channel.handlers import ChannelHandlers
from gateway.channel.hub import AgentHub
from gateway.channel.mqtt_bridge import MqttBridge
from lab.ports import free_tcp_port
from printgate.domain import (
    AgentId,
    DealerId,
    Device,
    DeviceId,
    DeviceIdentity,
    DwaSession,
    DwaTarget,
    Role,
    SessionId,
    SiteId,
    User,
    UserId,
)
from printgate.store import channel as channel_store
from printgate.store import devices as device_store
from printgate.store import sessions as session_store
from printgate.store import tenants
from printgate.store.db import Database
from printgate.testing.audit import ReadableAuditLog
from printgate.testing.database import migrated, sqlite_url
from printgate.testing.tenancy import Tenancy
from printgate.wire import agent_pb2 as pb
from tests.channel.broker import Broker


@dataclass
class Recorder:
    """What the gateway handed to the integrator's callbacks."""

    inventories: list[tuple[str, list[pb.DiscoveredDevice]]] = field(default_factory=list)
    readings: list[tuple[str, str, bytes]] = field(default_factory=list)
    presence: list[tuple[str, bool]] = field(default_factory=list)
    results: list[tuple[str, pb.CommandResult]] = field(default_factory=list)

    def handlers(self) -> ChannelHandlers:
        async def on_inventory(agent_id: str, devices: list[pb.DiscoveredDevice]) -> None:
            self.inventories.append((agent_id, devices))

        async def on_readings(agent_id: str, batch: pb.ReadingsBatch) -> pb.Ack:
            """Idempotent per (agent, batch id), as the fleet's ingest is."""
            seen = any(a == agent_id and b == batch.batch_id for a, b, _ in self.readings)
            if not seen:
                self.readings.append((agent_id, batch.batch_id, batch.payload_json))
            return pb.Ack(id=batch.batch_id, duplicate=seen)

        async def on_presence(agent_id: str, online: bool) -> None:
            self.presence.append((agent_id, online))

        async def on_result(agent_id: str, result: pb.CommandResult) -> None:
            self.results.append((agent_id, result))

        return ChannelHandlers(on_inventory, on_readings, on_presence, on_result)


@dataclass
class Cloud:
    db: Database
    ca: AgentCA
    hub: AgentHub
    server: AgentChannelServer
    audit: ReadableAuditLog
    recorder: Recorder
    site_a: str
    site_b: str
    tmp: Path

    async def token(self, site: str | None = None, ttl: timedelta = timedelta(minutes=10)) -> str:
        async with self.db.transaction() as s:
            return await channel_store.create_enrolment_token(
                s, site or self.site_a, ttl=ttl, created_by="admin@dealer.test")

    async def enrol(self, site: str | None = None, name: str | None = None) -> EnrolledIdentity:
        data = self.tmp / (name or f"agent-{uuid.uuid4().hex[:6]}")
        return await enroll(self.server.enrol_target, await self.token(site), data,
                            ca_cert_pem=self.ca.cert_pem)


async def make_tenancy(db: Database) -> tuple[str, str]:
    """Dealer d1 with customers c1 (site-a) and c2 (site-b); the two site ids."""
    await (Tenancy().dealer("d1", "Dealer One")
           .customer("c1", "d1", "Customer One").customer("c2", "d1", "Customer Two")
           .site("site-a", "c1", "A").site("site-b", "c2", "B")
           .save(db))
    return "site-a", "site-b"


async def make_session(db: Database, agent_id: str, site_id: str) -> str:
    """A live DWA session on a device of ``agent_id`` (rows only; no tunnel); its id."""
    suffix = uuid.uuid4().hex[:12]
    now = datetime.now(UTC)
    async with db.transaction() as s:
        if await tenants.get_user(s, "tech-channel") is None:
            await tenants.add_user(s, User(UserId("tech-channel"), "tech@channel.test", "Tech",
                                           frozenset({Role.TECHNICIAN}), dealer_id=DealerId("d1")))
            await s.flush()
        await device_store.add_device(s, Device(DeviceId("dev-" + suffix), SiteId(site_id), AgentId(agent_id),
                                                "127.0.20.9", DeviceIdentity(serial="SN" + suffix)), now=now)
        await s.flush()
        await session_store.save_session(s, DwaSession(
            SessionId(suffix), UserId("tech-channel"), DeviceId("dev-" + suffix), AgentId(agent_id),
            DwaTarget("127.0.20.9", 80), created_at=now, expires_at=now + timedelta(minutes=10)))
    return suffix


@pytest.fixture(scope="session")
async def cloud(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Cloud]:
    tmp = tmp_path_factory.mktemp("channel")
    async with migrated(sqlite_url(tmp / "cloud.db")) as db:
        site_a, site_b = await make_tenancy(db)
        ca = AgentCA.load_or_create(tmp / "ca")
        hub = AgentHub(ca.command_key)
        recorder = Recorder()
        audit = ReadableAuditLog(db, None)
        server = AgentChannelServer(
            "127.0.0.1", free_tcp_port(), ca=ca, db=db, audit=audit, hub=hub,
            handlers=recorder.handlers(), enrol_port=free_tcp_port(),
            facts=ChannelFacts(relay_address="127.0.0.1:8422", relay_host_key_fingerprint="SHA256:test"),
            revocation_poll_s=0.5,
        )
        await server.start()
        yield Cloud(db, ca, hub, server, audit, recorder, site_a, site_b, tmp)
        await server.aclose()


async def eventually(check, timeout: float = 10.0, interval: float = 0.05):  # type: ignore[no-untyped-def]
    """Poll ``check`` (sync) until truthy; bounded."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = check()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


@pytest.fixture(scope="session")
async def broker(cloud: Cloud) -> AsyncIterator[Broker]:
    """The reference Mosquitto; the gateway keeps its CRL and reloads it on every revocation."""
    b = Broker.prepare(cloud.ca)
    b.start()
    await cloud.server.attach_crl(CrlPublisher(cloud.ca, b.crl_path, reload=b.reload))
    yield b
    b.remove()


@pytest.fixture(scope="session")
async def bridge(cloud: Cloud, broker: Broker) -> AsyncIterator[MqttBridge]:
    d = broker.directory
    b = MqttBridge("127.0.0.1", broker.port, ca_path=d / "ca.crt", cert_path=d / "bridge.crt",
                   key_path=d / "bridge.key", hub=cloud.hub, handlers=cloud.recorder.handlers(),
                   db=cloud.db, denials=cloud.server.denials)
    await b.start()
    yield b
    await b.aclose()
