"""Open web page from the portal: step-up MFA when the second factor is stale,
absolute session timeout, and My sessions listing only the user's sessions."""

from __future__ import annotations

from datetime import timedelta

import httpx

from printgate.domain import Role
from printgate.testing.portal import create_user, csrf_of, rfc6238, sign_in
from tests.portal.conftest import Portal


async def post(c: httpx.AsyncClient, page: str, url: str, data: dict | None = None) -> httpx.Response:
    token = csrf_of((await c.get(page)).text)
    return await c.post(url, data={**(data or {}), "csrf_token": token})


async def test_stale_mfa_is_refused_then_step_up_lets_the_technician_in(portal: Portal, client: httpx.AsyncClient) -> None:
    user, secret = await create_user(portal.db, Role.TECHNICIAN)
    assert secret
    await sign_in(client, portal, user, secret)
    portal.clock.advance(minutes=16)  # default policy: MFA within 15 min
    await client.get("/devices")  # keep the portal session alive (idle 30 min)
    r = await post(client, "/devices", "/devices/dev-c-open/open")
    assert r.status_code == 403 and "mfa.stale" in r.text and "/mfa/step-up" in r.text
    page = await client.get("/mfa/step-up?next=/devices")
    r = await client.post("/mfa/step-up", data={"code": rfc6238(secret, portal.clock()), "next": "/devices",
                                                "csrf_token": csrf_of(page.text)})
    assert r.status_code == 303
    r = await post(client, "/devices", "/devices/dev-c-open/open")
    assert r.status_code == 303 and "/sessions?launched=" in r.headers["location"]
    sessions = await client.get("/sessions")
    assert sessions.text.count("data-session-id=") == 1
    # another technician sees none of them and cannot end them
    other, other_secret = await create_user(portal.db, Role.TECHNICIAN)
    async with httpx.AsyncClient(base_url=portal.url, headers={"accept": "text/html"}) as c2:
        await sign_in(c2, portal, other, other_secret)
        assert "data-session-id=" not in (await c2.get("/sessions")).text
        sid = r.headers["location"].split("launched=")[1]
        assert (await post(c2, "/sessions", f"/sessions/{sid}/end")).status_code == 404
    assert (await post(client, "/sessions", f"/sessions/{sid}/end")).status_code == 303
    step_ups = [e for e in portal.audit.of("auth.mfa_step_up") if e.actor == user.email]
    assert step_ups and step_ups[-1].outcome == "success"


async def test_absolute_timeout_ends_even_an_active_session(portal: Portal, client: httpx.AsyncClient) -> None:
    user, secret = await create_user(portal.db, Role.VIEWER, totp=False)
    await sign_in(client, portal, user, secret)
    hours = portal.settings.session_absolute_hours
    start = portal.clock.offset
    for _ in range(hours * 3):  # active every 20 minutes, never idle
        portal.clock.advance(minutes=20)
        if (await client.get("/devices")).status_code != 200:
            break
    else:
        raise AssertionError("session outlived the absolute timeout")
    lived = portal.clock.offset - start
    assert timedelta(hours=hours) <= lived <= timedelta(hours=hours, minutes=20)
