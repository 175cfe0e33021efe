"""Password + TOTP sign-in, lockout, CSRF, sessions and sign-out, as a browser sees them."""

from __future__ import annotations

import asyncio
import secrets
from datetime import timedelta

import httpx

from lab.ports import free_tcp_port
from portal.app import create_app
from printgate.domain import Role
from printgate.settings import PortalSettings
from printgate.store import users
from printgate.store.db import Database
from printgate.testing.audit import RecordingAuditSink
from printgate.testing.broker import PolicyBroker
from printgate.testing.portal import (
    PASSWORD,
    Clock,
    create_user,
    csrf_of,
    password_step,
    rfc6238,
    served,
    sign_in,
)
from printgate.testing.tenancy import Tenancy
from tests.portal.conftest import Portal


async def test_password_then_totp_signs_in_and_shows_devices(portal: Portal, client: httpx.AsyncClient) -> None:
    user, secret = await create_user(portal.db, Role.TECHNICIAN)
    assert secret
    r = await password_step(client, user.email)
    assert r.status_code == 303 and r.headers["location"].startswith("/login/verify")
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie
    # half-way session is not enough for pages
    assert (await client.get("/devices")).status_code == 303
    page = await client.get("/login/verify")
    code = rfc6238(secret, portal.clock())
    r = await client.post("/login/verify", data={"code": code, "csrf_token": csrf_of(page.text)})
    assert r.status_code == 303
    devices = await client.get("/devices")
    assert devices.status_code == 200
    assert "Front desk LaserJet" in devices.text and "Open web page" in devices.text
    assert "Other dealer printer" not in devices.text
    assert [e.outcome for e in portal.audit.of("auth.mfa") if e.actor == user.email] == ["success"]


async def test_totp_code_is_accepted_once_and_refused_on_reuse(portal: Portal) -> None:
    user, secret = await create_user(portal.db, Role.TECHNICIAN)
    assert secret
    code = rfc6238(secret, portal.clock())
    results = []
    for _ in range(2):
        async with httpx.AsyncClient(base_url=portal.url, headers={"accept": "text/html"}) as c:
            await password_step(c, user.email)
            page = await c.get("/login/verify")
            r = await c.post("/login/verify", data={"code": code, "csrf_token": csrf_of(page.text)})
            results.append((r.status_code, r.text))
    assert results[0][0] == 303
    assert results[1][0] == 401 and "already used" in results[1][1]
    reasons = [e.details.get("reason") for e in portal.audit.of("auth.mfa") if e.actor == user.email]
    assert "replayed" in reasons


async def test_totp_codes_outside_the_window_are_refused(portal: Portal, client: httpx.AsyncClient) -> None:
    user, secret = await create_user(portal.db, Role.TECHNICIAN)
    assert secret
    now = portal.clock()
    await password_step(client, user.email)
    for skew in (timedelta(seconds=-95), timedelta(seconds=95)):
        page = await client.get("/login/verify")
        r = await client.post("/login/verify", data={"code": rfc6238(secret, now + skew),
                                                     "csrf_token": csrf_of(page.text)})
        assert r.status_code == 401, skew
    # one step of skew is tolerated
    page = await client.get("/login/verify")
    r = await client.post("/login/verify", data={"code": rfc6238(secret, now - timedelta(seconds=30)),
                                                 "csrf_token": csrf_of(page.text)})
    assert r.status_code == 303


async def test_wrong_password_gives_generic_error_and_locks_out_after_repeated_failures(
    portal: Portal, client: httpx.AsyncClient
) -> None:
    user, _ = await create_user(portal.db, Role.TECHNICIAN)
    for _ in range(5):
        r = await password_step(client, user.email, "wrong password!!")
        assert r.status_code == 401 and "email or password is wrong" in r.text
    r = await password_step(client, user.email)  # right password, but locked
    assert r.status_code == 429 and "try again in" in r.text
    portal.clock.advance(seconds=31)
    r = await password_step(client, user.email)
    assert r.status_code == 303
    unknown = await password_step(client, "nobody@example.org")
    assert unknown.status_code == 401 and "email or password is wrong" in unknown.text


async def test_forms_without_a_valid_csrf_token_are_refused(portal: Portal, client: httpx.AsyncClient) -> None:
    user, secret = await create_user(portal.db, Role.TECHNICIAN)
    await client.get("/login")
    r = await client.post("/login", data={"email": user.email, "password": PASSWORD, "csrf_token": "x"})
    assert r.status_code == 403 and "CSRF" in r.text
    await sign_in(client, portal, user, secret)
    r = await client.post("/devices/dev-c-open/open", data={"csrf_token": "forged"})
    assert r.status_code == 403
    r = await client.post("/devices/dev-c-open/open")
    assert r.status_code == 403


async def test_idle_timeout_ends_the_session(portal: Portal, client: httpx.AsyncClient) -> None:
    user, secret = await create_user(portal.db, Role.TECHNICIAN)
    await sign_in(client, portal, user, secret)
    assert (await client.get("/devices")).status_code == 200
    portal.clock.advance(minutes=portal.settings.session_idle_minutes + 1)
    r = await client.get("/devices")
    assert r.status_code == 303 and r.headers["location"].startswith("/login")


async def test_logout_everywhere_ends_every_session_of_the_user(portal: Portal) -> None:
    user, secret = await create_user(portal.db, Role.TECHNICIAN)
    clients = [httpx.AsyncClient(base_url=portal.url, headers={"accept": "text/html"}) for _ in range(2)]
    try:
        await sign_in(clients[0], portal, user, secret)
        portal.clock.advance(seconds=30)  # next TOTP step for the second login
        await sign_in(clients[1], portal, user, secret)
        page = await clients[0].get("/devices")
        r = await clients[0].post("/logout/everywhere", data={"csrf_token": csrf_of(page.text)})
        assert r.status_code == 303
        assert (await clients[1].get("/devices")).status_code == 303
        assert (await clients[0].get("/devices")).status_code == 303
    finally:
        for c in clients:
            await c.aclose()


async def test_api_requests_without_session_get_401(portal: Portal) -> None:
    async with httpx.AsyncClient(base_url=portal.url) as c:
        r = await c.get("/devices", headers={"accept": "application/json"})
        assert r.status_code == 401
        r = await c.get("/devices", headers={"authorization": "Bearer pgt_nope"})
        assert r.status_code == 401


async def test_technician_without_authenticator_must_enrol_with_qr_code(portal: Portal, client: httpx.AsyncClient) -> None:
    user, _ = await create_user(portal.db, Role.TECHNICIAN, totp=False)
    r = await password_step(client, user.email)
    assert r.headers["location"].startswith("/mfa/enrol")
    page = await client.get("/mfa/enrol")
    assert "<svg" in page.text
    import re
    secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', page.text).group(1)
    pending = re.search(r'name="pending" value="([^"]+)"', page.text).group(1)
    r = await client.post("/mfa/enrol", data={"pending": pending, "code": rfc6238(secret, portal.clock()),
                                              "csrf_token": csrf_of(page.text)})
    assert r.status_code == 200 and "Recovery codes" in r.text
    codes = re.findall(r"<code>([0-9a-f]{8}-[0-9a-f]{8})</code>", r.text)
    assert len(codes) == 10
    assert (await client.get("/devices")).status_code == 200
    # a recovery code works once as second factor
    async with httpx.AsyncClient(base_url=portal.url, headers={"accept": "text/html"}) as c2:
        await password_step(c2, user.email)
        for expected in (303, 401):
            page = await c2.get("/login/verify")
            r = await c2.post("/login/verify", data={"code": codes[0], "csrf_token": csrf_of(page.text)})
            assert r.status_code == expected
            if expected == 303:
                await c2.aclose()
                c2 = httpx.AsyncClient(base_url=portal.url, headers={"accept": "text/html"})
                await password_step(c2, user.email)


async def test_concurrent_wrong_passwords_all_count_towards_the_lockout(db: Database) -> None:
    """Guesses sent in parallel must not overwrite each other's failure count (each read the same
    count and wrote it plus one: 8 guesses counted as 2): the lock-out holds for an attacker who does
    not wait, on SQLite and PostgreSQL."""
    await Tenancy().dealer("d1").save(db)
    user, _ = await create_user(db, Role.TECHNICIAN)
    port, clock = free_tcp_port(), Clock()
    base = f"http://127.0.0.1:{port}"
    app = create_app(PortalSettings(public_url=base, secret_key=secrets.token_urlsafe(32)), db=db,
                     broker=PolicyBroker(db, clock, base), audit=RecordingAuditSink(), clock=clock)
    async with served(app, port):
        clients = [httpx.AsyncClient(base_url=base, timeout=30, headers={"accept": "text/html"})
                   for _ in range(8)]
        try:
            pages = [await c.get("/login") for c in clients]  # each its own CSRF pre-session
            guesses = await asyncio.gather(*(
                c.post("/login", data={"email": user.email, "password": f"wrong password {i}!",
                                       "csrf_token": csrf_of(page.text)})
                for i, (c, page) in enumerate(zip(clients, pages, strict=True))))
            assert {r.status_code for r in guesses} <= {401, 429}, [r.status_code for r in guesses]
            async with db.session() as s:
                account = await users.get_sign_in(s, user.email)
            assert account is not None and account.failed_logins == 8, account
            r = await password_step(clients[0], user.email)  # right password, but locked after 8 failures
            assert r.status_code == 429 and "try again in" in r.text
        finally:
            for c in clients:
                await c.aclose()
