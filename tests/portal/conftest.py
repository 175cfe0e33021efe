"""One portal served by uvicorn on loopback for the whole run, with a seeded
store (SQLite), the real policy engine behind a small fake broker, a
controllable clock, and helpers to sign in like a browser would."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import re
import secrets
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import uvicorn

from lab.ports import free_tcp_port
from portal.app import create_app
from portal.auth.passwords import hash_password
from printgate.domain import (
    Agent,
    AgentId,
    Customer,
    CustomerId,
    Dealer,
    DealerId,
    Device,
    DeviceId,
    DeviceIdentity,
    RemoteAccessMode,
    Role,
    Site,
    SiteId,
    User,
    UserId,
)
from printgate.settings import PortalSettings
from printgate.store.db import Database, migrate
from printgate.store.devices import add_device
from printgate.store.tenants import add_agent, add_customer, add_dealer, add_site, add_user
from tests.portal.fake_broker import PolicyBroker, RecordingAudit

PASSWORD = "correct horse battery staple"


def rfc6238(secret_b32: str, at: datetime, step: int = 30, digits: int = 6) -> str:
    """TOTP computed independently of pyotp (RFC 6238 / RFC 4226, HMAC-SHA1)."""
    key = base64.b32decode(secret_b32.upper() + "=" * (-len(secret_b32) % 8))
    counter = int(at.timestamp()) // step
    mac = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    value = struct.unpack(">I", mac[offset:offset + 4])[0] & 0x7FFFFFFF
    return str(value % 10**digits).zfill(digits)


class Clock:
    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, **kw: float) -> None:
        self.offset += timedelta(**kw)


@dataclass
class Portal:
    url: str
    db: Database
    audit: RecordingAudit
    clock: Clock
    settings: PortalSettings


@pytest.fixture(scope="session")
async def portal(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Portal]:
    path: Path = tmp_path_factory.mktemp("portal") / "portal.db"
    url = f"sqlite+aiosqlite:///{path}"
    await migrate(url)
    db = Database(url)
    await seed(db)
    port = free_tcp_port()
    base = f"http://127.0.0.1:{port}"
    settings = PortalSettings(host="127.0.0.1", port=port, public_url=base,
                              secret_key=secrets.token_urlsafe(32))
    clock, audit = Clock(), RecordingAudit()
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
    await db.aclose()


async def seed(db: Database) -> None:
    now = datetime.now(UTC)
    async with db.transaction() as s:
        for d in ("d1", "d2"):
            await add_dealer(s, Dealer(DealerId(d), f"Dealer {d}"))
        await s.flush()
        for cid, dealer, mode in (("c-open", "d1", RemoteAccessMode.OPEN),
                                  ("c-appr", "d1", RemoteAccessMode.APPROVAL_REQUIRED),
                                  ("c-never", "d1", RemoteAccessMode.NEVER),
                                  ("c-other", "d2", RemoteAccessMode.OPEN)):
            await add_customer(s, Customer(CustomerId(cid), DealerId(dealer), f"Customer {cid}", mode))
        await s.flush()
        for cid in ("c-open", "c-appr", "c-never", "c-other"):
            await add_site(s, Site(SiteId(f"s-{cid}"), CustomerId(cid), "HQ"))
        await s.flush()
        for cid in ("c-open", "c-appr", "c-never", "c-other"):
            await add_agent(s, Agent(AgentId(f"a-{cid}"), SiteId(f"s-{cid}"), "agent", online=True))
        await s.flush()
        for cid, name in (("c-open", "Front desk LaserJet"), ("c-appr", "Finance MFP"),
                          ("c-never", "Lab plotter"), ("c-other", "Other dealer printer")):
            await add_device(s, Device(DeviceId(f"dev-{cid}"), SiteId(f"s-{cid}"), AgentId(f"a-{cid}"),
                                       "127.0.20.1", DeviceIdentity(serial=f"SN-{cid}", model="HP M404"),
                                       name=name), now=now)


async def create_user(db: Database, *roles: Role, dealer: str | None = "d1",
                      customer: str | None = None, totp: bool = True) -> tuple[User, str | None]:
    uid = secrets.token_hex(4)
    user = User(UserId(f"u-{uid}"), f"{uid}@example.org", f"User {uid}", frozenset(roles),
                DealerId(dealer) if dealer else None, CustomerId(customer) if customer else None)
    secret = base64.b32encode(secrets.token_bytes(20)).decode().rstrip("=") if totp else None
    async with db.transaction() as s:
        await add_user(s, user, password_hash=hash_password(PASSWORD), totp_secret=secret)
    return user, secret


CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    m = CSRF_RE.search(html)
    assert m, "page has no CSRF token"
    return m.group(1)


async def password_step(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> httpx.Response:
    page = await client.get("/login")
    return await client.post("/login", data={"email": email, "password": password,
                                             "csrf_token": csrf_of(page.text)})


async def sign_in(client: httpx.AsyncClient, portal: Portal, user: User, secret: str | None) -> None:
    r = await password_step(client, user.email)
    assert r.status_code == 303, r.text
    if secret is not None:
        page = await client.get("/login/verify")
        r = await client.post("/login/verify", data={"code": rfc6238(secret, portal.clock()),
                                                     "csrf_token": csrf_of(page.text)})
        assert r.status_code == 303, r.text


@pytest.fixture
async def client(portal: Portal) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=portal.url, follow_redirects=False, timeout=10,
                                 headers={"accept": "text/html"}) as c:
        yield c
