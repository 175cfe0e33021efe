"""Fleet fixtures: a seeded store on both backends, readings computed from the
lab's SNMP recordings by the agent's own parser, and a portal app with the
fleet router and a signed-in user."""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from agent.polling import reading_from
from agent.snmp.parsing import identity_from
from agent.snmp.profiles import profile_for
from lab import snmprec
from lab.snmp import recording_path
from portal.app import create_app
from printgate.domain import (
    DeviceIdentity,
    Reading,
    ReadingKind,
    Role,
    User,
)
from printgate.interfaces import AgentCommands
from printgate.settings import PortalSettings
from printgate.store.db import Database
from printgate.testing.audit import RecordingAuditSink
from printgate.testing.broker import PolicyBroker
from printgate.testing.portal import Clock, create_user, sign_in
from printgate.testing.tenancy import Tenancy

M130_SERIAL = "VNCRC48198"  # serial in jetdirect_m130nw(-alerts).snmprec
BROTHER_SERIAL = "B9J154306"
T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)


async def seed_fleet(db: Database) -> None:
    """d1 owns c1 (agent a1 online: M130 by serial, Canon by ip only) and c2
    (agent a2 offline: Brother); d2 owns c3 whose device has the M130's
    serial and ip too (a mapping must never cross sites)."""
    t = Tenancy().dealer("d1").dealer("d2")
    for cid, dealer, online in (("c1", "d1", True), ("c2", "d1", False), ("c3", "d2", True)):
        t.customer(cid, dealer).site(f"s-{cid}", cid, f"HQ {cid}").agent(f"a-{cid}", f"s-{cid}", online=online)
    for did, cid, ip, serial, name in (
        ("dev-m130", "c1", "127.0.20.15", M130_SERIAL, "Front desk M130"),
        ("dev-canon", "c1", "127.0.20.12", None, "Canon in the lab"),
        ("dev-brother", "c2", "127.0.20.11", BROTHER_SERIAL, "Warehouse Brother"),
        ("dev-foreign", "c3", "127.0.20.15", M130_SERIAL, "Other dealer M130"),
    ):
        t.device(did, f"s-{cid}", f"a-{cid}", ip, DeviceIdentity(serial=serial, model="recorded"), name=name)
    await t.save(db, now=T0)


def reading_of(recording: str, *, ip: str, at: datetime, kinds: Sequence[ReadingKind] = tuple(ReadingKind),
               serial_known: bool = True) -> Reading:
    """What the agent's parser makes of ``recording`` (the expected values too)."""
    data = snmprec.load(recording_path(recording))
    ident, _ = identity_from(data, ip=ip)
    return reading_from(data, ip=ip, kinds=kinds, serial=ident.serial if serial_known else None,
                        profile=profile_for(ident.sys_object_id), taken_at=at, reading_id=uuid.uuid4().hex)


def payload_of(readings: Sequence[Reading]) -> bytes:
    return json.dumps({"readings": [r.to_dict() for r in readings]}).encode()


@pytest.fixture
async def fleet_db(db: Database) -> Database:
    await seed_fleet(db)
    return db


@dataclass
class FleetPortal:
    db: Database
    clock: Clock
    app: object

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app),  # type: ignore[arg-type]
                                 base_url="http://portal.test", follow_redirects=False, timeout=20,
                                 headers={"accept": "text/html"})


def fleet_app(db: Database, base: str = "http://portal.test", *, commands: AgentCommands | None = None) -> FleetPortal:
    clock = Clock()
    settings = PortalSettings(public_url=base, secret_key=secrets.token_urlsafe(32))
    app = create_app(settings, db=db, broker=PolicyBroker(db, clock, base), audit=RecordingAuditSink(),
                     clock=clock, commands=commands)
    return FleetPortal(db, clock, app)


@pytest.fixture
async def fleet_portal(fleet_db: Database) -> FleetPortal:
    return fleet_app(fleet_db)




async def signed_in(fp: FleetPortal, *roles: Role, dealer: str | None = "d1",
                    customer: str | None = None) -> tuple[httpx.AsyncClient, User]:
    user, secret = await create_user(fp.db, *roles, dealer=dealer, customer=customer)
    client = fp.client()
    await sign_in(client, fp, user, secret)
    return client, user


def days(n: float) -> timedelta:
    return timedelta(days=n)
