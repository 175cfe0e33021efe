"""Session checks on every request: cookies bound to one session, CSRF, expiry, idle, admin kill."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest

from lab.ews import EwsLab, EwsServer
from tests.proxy.conftest import SessionClient

PRINTER = "brother_hl5370dw"


@pytest.fixture
def ews(ews_lab: EwsLab) -> EwsServer:
    return ews_lab[PRINTER]


async def test_request_without_cookie_is_refused(harness, ews):
    route = harness.open_session(ews)
    c = SessionClient(harness, route)
    try:
        r = await c.request("GET", "/")
        assert r.status_code == 401 and "Not signed in" in r.text
        assert "Device home" not in r.text
    finally:
        await c.aclose()


async def test_cookie_of_one_session_is_refused_on_another_session_host(harness, session_client, ews):
    a = await session_client(ews)
    b = await session_client(ews)
    stolen = SessionClient(harness, b.route)
    stolen.cookie = a.cookie.replace("printgate_dwa=", "printgate_dwa=")  # A's cookie on B's host
    try:
        r = await stolen.request("GET", "/")
        assert r.status_code == 401
    finally:
        await stolen.aclose()


async def test_launch_token_for_one_host_is_refused_on_another(harness, ews):
    a = harness.open_session(ews)
    b = harness.open_session(ews)
    token = harness.routes.issue_launch_token(a.session_id)
    c = SessionClient(harness, b)
    try:
        r = await c.http.get("/__printgate/launch", params={"token": token})
        assert r.status_code == 403 and "set-cookie" not in r.headers
    finally:
        await c.aclose()


async def test_unknown_session_host_gets_404(harness, ews):
    route = harness.open_session(ews)
    c = SessionClient(harness, route)
    try:
        r = await c.http.get("/", headers={"host": f"s-nosuch.dwa.localhost:{harness.proxy.port}"})
        assert r.status_code == 404
        r = await c.http.get("/", headers={"host": f"127.0.0.1:{harness.proxy.port}"})
        assert r.status_code == 404
    finally:
        await c.aclose()


async def test_proxy_cookie_is_never_sent_to_the_device(harness, session_client, ews):
    c = await session_client(ews)
    r = await c.request("GET", "/api/status", headers={"cookie": "devicepref=1"})
    assert r.status_code == 200
    assert ews.state.last_cookie_header == "devicepref=1"
    assert "printgate" not in ews.state.last_cookie_header
    # and the Host header the device saw is its own address
    assert ews.state.last_host == ews.origin.split("//", 1)[1]


async def test_end_without_csrf_token_is_refused(harness, session_client, ews):
    c = await session_client(ews)
    r = await c.request("POST", "/__printgate/end", data={"csrf": "forged"})
    assert r.status_code == 403
    assert harness.routes.get(c.route.session_id) is not None
    assert c.route.session_id not in harness.end_requests


async def test_session_past_its_maximum_duration_shows_ended_page(harness, session_client, ews):
    c = await session_client(ews, minutes=1.5 / 60)
    assert (await c.request("GET", "/")).status_code == 200
    await asyncio.sleep(2.5)  # the sweeper ends it and closes the kept-alive connection
    r = await c.request("GET", "/")
    assert r.status_code == 410 and "maximum session duration" in r.text
    assert any(sid == c.route.session_id for sid, _ in harness.timeouts)


async def test_idle_session_times_out_but_activity_keeps_it_alive(harness, session_client, ews):
    c = await session_client(ews, idle_s=1)
    for _ in range(4):  # 2 s of activity, longer than the idle timeout
        assert (await c.request("GET", "/api/status")).status_code == 200
        await asyncio.sleep(0.5)
    await asyncio.sleep(1.6)
    r = await c.request("GET", "/")
    assert r.status_code == 410 and "idle" in r.text


async def test_websocket_traffic_counts_as_activity(harness, session_client, ews):
    c = await session_client(ews, idle_s=1)
    url = f"http://127.0.0.1:{harness.proxy.port}/ws/status"
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(url, headers={"host": c.netloc, "cookie": c.cookie}) as ws:
            got = 0
            async with asyncio.timeout(5):
                async for msg in ws:
                    assert ews.host not in msg.data  # rewritten inside WebSocket messages too
                    got += 1
                    if got >= 12:  # ~2.4 s, well past the 1 s idle timeout
                        break
    assert harness.routes.get(c.route.session_id) is not None


async def test_admin_kill_closes_live_websocket(harness, session_client, ews):
    c = await session_client(ews)
    url = f"http://127.0.0.1:{harness.proxy.port}/ws/status"
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(url, headers={"host": c.netloc, "cookie": c.cookie}) as ws:
            await ws.receive(timeout=5)
            harness.routes.remove(c.route.session_id, "killed by an administrator")
            closed = False
            async with asyncio.timeout(5):
                while True:
                    msg = await ws.receive()
                    if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                        closed = True
                        break
            assert closed
    r = await c.request("GET", "/")
    assert r.status_code == 410 and "killed by an administrator" in r.text


async def test_extend_moves_the_deadline(harness, session_client, ews):
    c = await session_client(ews, minutes=1.5 / 60)
    harness.routes.extend(c.route.session_id, datetime.now(UTC) + timedelta(minutes=5))
    await asyncio.sleep(1.8)
    assert (await c.request("GET", "/")).status_code == 200


async def test_binary_websocket_message_is_dropped(harness, session_client, ews):
    c = await session_client(ews)
    url = f"http://127.0.0.1:{harness.proxy.port}/ws/status"
    before = len(ews.state.received)
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(url, headers={"host": c.netloc, "cookie": c.cookie}) as ws:
            await ws.send_bytes(b"PK\x03\x04" + bytes(1000))
            await ws.send_str("hello")
            async with asyncio.timeout(5):
                while True:
                    msg = await ws.receive()
                    if msg.type == aiohttp.WSMsgType.TEXT and "echo" in msg.data:
                        break
    assert len(ews.state.received) == before


async def test_user_can_extend_within_policy_once(harness, session_client, ews):
    c = await session_client(ews, minutes=1.5 / 60)
    home = await c.request("GET", "/")
    csrf = re.search(r"name=csrf value=([0-9a-f]+)", home.text).group(1)
    r = await c.request("POST", "/__printgate/extend", data={"csrf": csrf})
    assert r.status_code == 303
    assert harness.routes.get(c.route.session_id).expires_at > datetime.now(UTC) + timedelta(minutes=9)
    again = await c.request("POST", "/__printgate/extend", data={"csrf": csrf})
    assert again.status_code == 403 and "longest time the policy allows" in again.text
    forged = await c.request("POST", "/__printgate/extend", data={"csrf": "0" * 64})
    assert forged.status_code == 403
    await asyncio.sleep(1.8)
    assert (await c.request("GET", "/")).status_code == 200


async def test_websocket_upgrade_needs_this_sessions_cookie(harness, session_client, ews):
    mine = await session_client(ews)
    other = await session_client(ews)
    url = f"http://127.0.0.1:{harness.proxy.port}/ws/status"
    async with aiohttp.ClientSession() as http:
        for cookie in (None, other.cookie, "printgate_dwa=forged"):
            headers = {"host": mine.netloc} | ({"cookie": cookie} if cookie else {})
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                async with http.ws_connect(url, headers=headers):
                    pass
            assert refused.value.status == 401
        async with http.ws_connect(url, headers={"host": mine.netloc, "cookie": mine.cookie}) as ws:
            msg = await asyncio.wait_for(ws.receive(), 10)
            assert msg.type == aiohttp.WSMsgType.TEXT


async def test_end_session_answers_200_and_the_session_is_gone_afterwards(harness, session_client, ews):
    """The bar's "End session" succeeds: its own answer (and audit record) is 200 with the ended page;
    only later requests to the ended session get 410 (the newcomer saw the end itself logged "-> 410")."""
    c = await session_client(ews)
    home = await c.request("GET", "/", headers={"Sec-Fetch-Dest": "document"})
    csrf = re.search(r"name=csrf value=([0-9a-f]+)", home.text)
    assert csrf is not None
    r = await c.request("POST", "/__printgate/end", data={"csrf": csrf.group(1)})
    assert r.status_code == 200 and "Remote session ended" in r.text and "ended by the technician" in r.text
    assert c.route.session_id in harness.end_requests
    later = await c.request("GET", "/")
    assert later.status_code == 410
    ends = [e for e in await harness.events(c.route.session_id) if e.details.get("path") == "/__printgate/end"]
    assert [(e.details["status"], e.details["reason"]) for e in ends] == [(200, "ended by the technician")]
