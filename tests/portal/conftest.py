"""One portal served by uvicorn on loopback for the whole run, with a seeded
store (SQLite), the real policy engine behind ``printgate.testing``'s broker
and a controllable clock (signing in: ``printgate.testing.portal``)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn

from lab.ports import free_tcp_port
from portal.app import create_app
from printgate.domain import DeviceIdentity, RemoteAccessMode
from printgate.settings import PortalSettings
from printgate.store.db import Database
from printgate.testing.audit import RecordingAuditSink
from printgate.testing.broker import PolicyBroker
from printgate.testing.database import migrated, sqlite_url
from printgate.testing.portal import Clock
from printgate.testing.tenancy import Tenancy


@dataclass
class Portal:
    url: str
    db: Database
    audit: RecordingAuditSink
    clock: Clock
    settings: PortalSettings


@pytest.fixture(scope="session")
async def portal(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Portal]:
    path: Path = tmp_path_factory.mktemp("portal") / "portal.db"
    async with migrated(sqlite_url(path)) as db:
        await seed(db)
        port = free_tcp_port()
        base = f"http://127.0.0.1:{port}"
        settings = PortalSettings(host="127.0.0.1", port=port, public_url=base,
                                  secret_key=secrets.token_urlsafe(32))
        clock, audit = Clock(), RecordingAuditSink()
        app = create_app(settings, db=db, broker=PolicyBroker(db, clock, base, audit), audit=audit, clock=clock)
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                               lifespan="off"))
        task = asyncio.create_task(server.serve())
        for _ in range(200):
            if server.started:
                break
            await asyncio.sleep(0.025)
        assert server.started, "portal did not start"
        yield Portal(base, db, audit, clock, settings)
        server.should_exit = True
        await asyncio.wait_for(task, 10)


CUSTOMERS = (("c-open", "d1", RemoteAccessMode.OPEN, "Front desk LaserJet"),
             ("c-appr", "d1", RemoteAccessMode.APPROVAL_REQUIRED, "Finance MFP"),
             ("c-never", "d1", RemoteAccessMode.NEVER, "Lab plotter"),
             ("c-other", "d2", RemoteAccessMode.OPEN, "Other dealer printer"))


async def seed(db: Database) -> None:
    """Dealers d1, d2; per customer one site, one online agent and one device ``dev-<customer>``."""
    t = Tenancy().dealer("d1").dealer("d2")
    for cid, dealer, mode, name in CUSTOMERS:
        t.customer(cid, dealer, f"Customer {cid}", mode).site(f"s-{cid}", cid)
        t.agent(f"a-{cid}", f"s-{cid}", online=True)
        t.device(f"dev-{cid}", f"s-{cid}", f"a-{cid}", "127.0.20.1",
                 DeviceIdentity(serial=f"SN-{cid}", model="HP M404"), name=name)
    await t.save(db)


@pytest.fixture
async def client(portal: Portal) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=portal.url, follow_redirects=False, timeout=10,
                                 headers={"accept": "text/html"}) as c:
        yield c
