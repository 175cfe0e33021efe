"""A live WebSocket keeps no history of its messages in the proxy (tester wsx F1).

mitmproxy kept every message of an open WebSocket in ``flow.websocket.messages``: a hostile
device pushing 64 KB status texts that pass every check grew the proxy by 203 MB, a page's
200,000 empty text frames by 50 MB, freed only at close. Now the list holds the latest message
only, and the ``dwa.websocket`` record still counts every message and its bytes.

A real aiohttp device and a real aiohttp client with the session's cookie, through the proxy;
the open WebSocket's flow is looked at in the proxy's own process.
"""

from __future__ import annotations

import asyncio
import base64
import gc
import os
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
from aiohttp import WSMsgType, web
from mitmproxy import http

from gateway.proxy.routes import SessionRoute
from lab.sites import serve
from tests.proxy.conftest import ProxyHarness, SessionClient

DONE = '{"status": "done"}'
WORDS = "toner ok tray ok paper ok drum ok "


class WsDevice:
    """A device whose WebSocket at ``/push`` sends ``n`` texts of ``size`` bytes of words, at
    ``/file`` a random file of ``size`` bytes as base64 in 4,080-character texts, at ``/texts``
    the texts in ``self.texts_to_send``; then ``DONE``. Every text it receives is kept by path."""

    def __init__(self) -> None:
        self.received: dict[str, list[str]] = {}
        self.texts_to_send: list[str] = []
        self.files: dict[str, bytes] = {}
        self.opened = 0  # WebSockets the device answered
        self.port = 0
        self._runner: web.AppRunner | None = None

    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        sock = web.WebSocketResponse()
        await sock.prepare(request)
        self.opened += 1
        tag = request.query.get("tag", "")
        got = self.received.setdefault(tag or request.path, [])
        n, size = int(request.query.get("n", "0")), int(request.query.get("size", "0"))
        if request.path == "/push":
            text = (WORDS * (size // len(WORDS) + 1))[:size]
            for _ in range(n):
                await sock.send_str(text)
        elif request.path == "/file":
            data = self.files[tag] = os.urandom(size)
            for i in range(0, size, 3060):
                await sock.send_str(base64.b64encode(data[i:i + 3060]).decode())
        elif request.path == "/texts":
            for text in self.texts_to_send:
                await sock.send_str(text)
        await sock.send_str(DONE)
        async for msg in sock:
            if msg.type == WSMsgType.TEXT:
                got.append(msg.data)
        return sock

    async def _page(self, _request: web.Request) -> web.Response:
        return web.Response(text="<html><body><p>Device home ok</p></body></html>", content_type="text/html")

    async def __aenter__(self) -> WsDevice:
        app = web.Application()
        for path in ("/push", "/file", "/texts", "/status"):
            app.router.add_get(path, self._ws)
        app.router.add_get("/", self._page)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        self.port = await serve(self._runner)
        return self

    async def __aexit__(self, *_exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


@pytest.fixture
async def ws_device() -> AsyncIterator[WsDevice]:
    async with WsDevice() as d:
        yield d


async def technician(harness: ProxyHarness, port: int) -> SessionClient:
    """A launched session of a new technician (own user and device ids: own tallies)."""
    sid = uuid.uuid4().hex[:12]
    route = SessionRoute(
        session_id=sid, host=harness.proxy.session_host(sid), upstream_host="127.0.0.1", upstream_port=port,
        device_origin=f"http://127.0.0.1:{port}", device_scheme="http", pinned_fingerprint=None,
        expires_at=datetime.now(UTC) + timedelta(minutes=30), idle_timeout_s=600, device_label="WS printer",
        customer_name="ACME", user_id=f"user-{sid}", device_id=f"dev-{sid}",
    )
    harness.routes.add(route)
    client = SessionClient(harness, route)
    await client.launch()
    assert client.cookie is not None
    return client


async def connect(http_session: aiohttp.ClientSession, harness: ProxyHarness, client: SessionClient,
                  path: str) -> aiohttp.ClientWebSocketResponse:
    return await http_session.ws_connect(f"http://127.0.0.1:{harness.proxy.port}{path}", autoping=False,
                                         max_msg_size=0, headers={"host": client.netloc, "cookie": client.cookie or ""})


async def texts_until_done(sock: aiohttp.ClientWebSocketResponse) -> list[str]:
    """The texts the browser gets before ``DONE``."""
    got: list[str] = []
    async with asyncio.timeout(60):
        async for msg in sock:
            if msg.type == WSMsgType.TEXT:
                if msg.data == DONE:
                    return got
                got.append(msg.data)
    raise AssertionError(f"the WebSocket ended before {DONE}")


def live_flow(tag: str) -> http.HTTPFlow:
    """The proxy's flow of the open WebSocket whose address carries ``tag`` (same process)."""
    found = [o for o in gc.get_objects()
             if isinstance(o, http.HTTPFlow) and o.websocket is not None and f"tag={tag}" in o.request.path]
    assert len(found) == 1, found
    return found[0]


async def test_an_open_websocket_keeps_only_its_latest_message(harness: ProxyHarness, ws_device: WsDevice) -> None:
    client = await technician(harness, ws_device.port)
    tag = uuid.uuid4().hex[:8]
    n, size, empties = 1500, 4000, 3000
    async with aiohttp.ClientSession() as http_session:
        sock = await connect(http_session, harness, client, f"/push?tag={tag}&n={n}&size={size}")
        got = await texts_until_done(sock)
        assert len(got) == n and all(len(t) == size for t in got)  # every status text passed
        for _ in range(empties):  # the browser's side: empty text messages
            await sock.send_str("")
        await sock.send_str('{"refresh": true}')
        async with asyncio.timeout(30):
            while len(ws_device.received.get(tag, [])) < empties + 1:
                await asyncio.sleep(0.05)
        flow = live_flow(tag)  # the WebSocket is still open: what the proxy holds of it now
        assert flow.websocket is not None and flow.live
        held = len(flow.websocket.messages)
        assert held <= 1, f"the proxy holds {held} messages of an open WebSocket"
        await sock.close()
    async with asyncio.timeout(10):
        while not (records := [e for e in await harness.events(client.route.session_id)
                               if e.type == "dwa.websocket"]):
            await asyncio.sleep(0.1)
    details = records[0].details
    assert details["messages"] == n + 1 + empties + 1  # the status texts, DONE, the empties, the refresh
    assert details["bytes"] == n * size + len(DONE) + len('{"refresh": true}')
    page = await client.request("GET", "/")
    assert page.status_code == 200 and "Device home ok" in page.text
    await client.aclose()
