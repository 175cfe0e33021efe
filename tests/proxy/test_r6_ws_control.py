"""A WebSocket's control frames carry nothing across the proxy (issue 21 round 6, tester xfer2):
mitmproxy relayed Ping and Pong payloads (125 bytes each, as many as a client likes) without
calling any addon, and 300 KB of random bytes crossed each way, outside every budget.

A real aiohttp device (no automatic Pongs) sends a file in its Pings, Pongs and its Close reason,
and logs every control frame it receives; a real aiohttp client with the session's cookie does
the same towards it.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
from aiohttp import WSMsgType, web

from gateway.proxy.routes import SessionRoute
from tests.proxy.conftest import ProxyHarness, SessionClient

DOWN = os.urandom(125 * 24)  # the device's file: 3,000 random bytes, 24 full control-frame payloads
UP = os.urandom(125 * 24)  # the technician's side's file


def _chunks(data: bytes) -> list[bytes]:
    return [data[i:i + 125] for i in range(0, len(data), 125)]


class ControlFrameDevice:
    """``/ws``: sends the file in Pings, then in unsolicited Pongs, then a status text; logs the
    control frames it receives and the Close it gets."""

    def __init__(self) -> None:
        self.received: list[tuple[str, bytes]] = []
        self.texts: list[str] = []
        self.port = 0
        self._runner: web.AppRunner | None = None

    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        sock = web.WebSocketResponse(autoping=False)
        await sock.prepare(request)
        for chunk in _chunks(DOWN):
            await sock.ping(chunk)
            await sock.pong(chunk)
        await sock.send_str('{"status": "ready"}')
        async for msg in sock:
            if msg.type in (WSMsgType.PING, WSMsgType.PONG):
                self.received.append((msg.type.name, bytes(msg.data)))
            elif msg.type == WSMsgType.TEXT:
                self.texts.append(msg.data)
        return sock

    async def __aenter__(self) -> ControlFrameDevice:
        app = web.Application()
        app.router.add_get("/ws", self._ws)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None and server.sockets
        self.port = server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


@pytest.fixture
async def device() -> AsyncIterator[ControlFrameDevice]:
    async with ControlFrameDevice() as d:
        yield d


async def test_ping_pong_and_close_reason_carry_nothing_across(harness: ProxyHarness, device: ControlFrameDevice) -> None:
    sid = uuid.uuid4().hex[:12]
    route = SessionRoute(sid, harness.proxy.session_host(sid), "127.0.0.1", device.port,
                         f"http://127.0.0.1:{device.port}", "http", None, datetime.now(UTC) + timedelta(minutes=30),
                         600, "Pinging printer", "ACME Print Customer")
    harness.routes.add(route)
    client = SessionClient(harness, route)
    await client.launch()
    assert client.cookie is not None
    got_control: list[tuple[str, bytes]] = []
    pongs_to_mine: list[bytes] = []
    async with aiohttp.ClientSession() as http:
        sock = await http.ws_connect(f"http://127.0.0.1:{harness.proxy.port}/ws", autoping=False,
                                     headers={"host": client.netloc, "cookie": client.cookie})
        async with asyncio.timeout(15):
            async for msg in sock:  # the device's frames, up to its status text
                if msg.type in (WSMsgType.PING, WSMsgType.PONG):
                    got_control.append((msg.type.name, bytes(msg.data)))
                elif msg.type == WSMsgType.TEXT:
                    assert msg.data == '{"status": "ready"}'
                    break
            for chunk in _chunks(UP):  # the technician's side sends its file the same ways
                await sock.ping(chunk)
                await sock.pong(chunk)
            async for msg in sock:  # the answers to our Pings, until they are all in
                if msg.type == WSMsgType.PONG:
                    pongs_to_mine.append(bytes(msg.data))
                    if len(pongs_to_mine) == len(_chunks(UP)):
                        break
                elif msg.type in (WSMsgType.PING, WSMsgType.TEXT):
                    got_control.append((msg.type.name, bytes(msg.data) if isinstance(msg.data, bytes) else b""))
            await sock.send_str('{"refresh": true}')  # the WebSocket still carries messages
            await asyncio.sleep(0.5)
            await sock.close(code=4000, message=UP[:50].hex().encode())
    await client.aclose()

    assert not got_control  # none of the device's Pings or Pongs reached the browser side
    assert pongs_to_mine == _chunks(UP)  # the proxy answered each of our Pings itself, as RFC 6455 asks
    # what reached the device: only the proxy's answers to its own Pings, nothing of ours
    assert device.received == [("PONG", chunk) for chunk in _chunks(DOWN)]
    assert device.texts == ['{"refresh": true}']  # the WebSocket still carries messages
    events = await harness.events(sid)
    (summary,) = [e for e in events if e.type == "dwa.websocket"]
    withheld = summary.details["control_bytes_withheld"]
    assert withheld["device"] == 2 * len(DOWN)
    assert withheld["browser"] == 2 * len(UP) + 100  # and the Close frame's reason (100 characters)
