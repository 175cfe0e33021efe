"""Using a portal like a browser does: serving it on loopback, users with a password and
TOTP, CSRF tokens, signing in."""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import hmac
import re
import secrets
import struct
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Protocol

import httpx
import uvicorn
from fastapi import FastAPI

from portal.auth.passwords import hash_password
from printgate.domain import CustomerId, DealerId, Role, User, UserId
from printgate.store.db import Database
from printgate.store.tenants import add_user

if TYPE_CHECKING:
    from playwright.async_api import Page

    from printgate.interfaces import AuditSink

PASSWORD = "correct horse battery staple"
CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


def rfc6238(secret_b32: str, at: datetime, step: int = 30, digits: int = 6) -> str:
    """TOTP computed independently of pyotp (RFC 6238 / RFC 4226, HMAC-SHA1)."""
    key = base64.b32decode(secret_b32.upper() + "=" * (-len(secret_b32) % 8))
    counter = int(at.timestamp()) // step
    mac = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    value = struct.unpack(">I", mac[offset:offset + 4])[0] & 0x7FFFFFFF
    return str(value % 10**digits).zfill(digits)


class Clock:
    """A clock tests can move forward (the portal's ``clock``)."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, **kw: float) -> None:
        self.offset += timedelta(**kw)


class HasClock(Protocol):
    @property
    def clock(self) -> Clock: ...


@functools.cache
def password_hash() -> str:
    """The argon2id hash of ``PASSWORD``, made once per process: every test user has that password,
    and one hash costs 0.1 s on an idle machine, seconds on a loaded one (signing in still verifies
    it for real)."""
    return hash_password(PASSWORD)


async def create_user(db: Database, *roles: Role, dealer: str | None = "d1",
                      customer: str | None = None, totp: bool = True) -> tuple[User, str | None]:
    """A user with ``PASSWORD`` and (``totp``) a TOTP secret; (user, secret)."""
    uid = secrets.token_hex(4)
    user = User(UserId(f"u-{uid}"), f"{uid}@example.org", f"User {uid}", frozenset(roles),
                DealerId(dealer) if dealer else None, CustomerId(customer) if customer else None)
    secret = base64.b32encode(secrets.token_bytes(20)).decode().rstrip("=") if totp else None
    hashed = await asyncio.to_thread(password_hash)
    async with db.transaction() as s:
        await add_user(s, user, password_hash=hashed, totp_secret=secret)
    return user, secret


def csrf_of(html: str) -> str:
    m = CSRF_RE.search(html)
    assert m, "page has no CSRF token"
    return m.group(1)


async def password_step(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> httpx.Response:
    page = await client.get("/login")
    return await client.post("/login", data={"email": email, "password": password,
                                             "csrf_token": csrf_of(page.text)})


async def sign_in(client: httpx.AsyncClient, portal: HasClock, user: User, secret: str | None) -> None:
    """Password, then (with a secret) the TOTP step at the portal's clock."""
    r = await password_step(client, user.email)
    assert r.status_code == 303, r.text
    if secret is not None:
        page = await client.get("/login/verify")
        r = await client.post("/login/verify", data={"code": rfc6238(secret, portal.clock()),
                                                     "csrf_token": csrf_of(page.text)})
        assert r.status_code == 303, r.text


async def sign_in_page(page: Page, base: str, email: str, secret: str | None, clock: Callable[[], datetime], *,
                       next_path: str = "") -> None:
    """The same sign-in in a Playwright page: the login form (``?next=next_path`` when given), then
    (with a secret) the TOTP code at ``clock()``; waits until ``next_path`` is shown, else until the
    page after sign-in has loaded."""
    await page.goto(f"{base}/login?next={next_path}" if next_path else f"{base}/login")
    await page.fill("input[name=email]", email)
    await page.fill("input[name=password]", PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    if secret is not None:
        await page.wait_for_url("**/login/verify**")
        await page.fill("input[name=code]", rfc6238(secret, clock()))
        await page.get_by_role("button", name="Verify").click()
    if next_path:
        await page.wait_for_url(f"**{next_path}")
    else:
        await page.wait_for_load_state()


@asynccontextmanager
async def served(app: FastAPI, port: int, *, proxy_headers: bool = True) -> AsyncIterator[str]:
    """Serve ``app`` on 127.0.0.1:``port``; yields the base URL (``proxy_headers=False``: the
    client address is the peer's, X-Forwarded-For is ignored)."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="off", proxy_headers=proxy_headers))
    task = asyncio.create_task(server.serve())
    for _ in range(400):
        if server.started or task.done():
            break
        await asyncio.sleep(0.025)
    assert server.started, "portal did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


@asynccontextmanager
async def portal_served(db: Database, audit: AuditSink) -> AsyncIterator[tuple[str, Clock]]:
    """The portal (``create_app``) on a free loopback port over ``db``, writing to ``audit``, with a
    ``PolicyBroker`` and its own ``Clock``: yields its address and that clock."""
    from pydantic import SecretStr

    from lab.ports import free_tcp_port
    from portal.app import create_app
    from printgate.settings import PortalSettings
    from printgate.testing.broker import PolicyBroker

    port = free_tcp_port()
    base = f"http://127.0.0.1:{port}"
    clock = Clock()
    settings = PortalSettings(host="127.0.0.1", port=port, public_url=base, secret_key=SecretStr(secrets.token_urlsafe(32)))
    app = create_app(settings, db=db, broker=PolicyBroker(db, clock, base, audit), audit=audit, clock=clock)
    async with served(app, port) as url:
        yield url, clock
