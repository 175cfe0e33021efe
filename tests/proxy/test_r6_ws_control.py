"""A WebSocket's control frames carry nothing across the proxy (issue 21 round 6, tester xfer2):
mitmproxy relayed Ping and Pong payloads (125 bytes each, as many as a client likes) without
calling any addon, and 300 KB of random bytes crossed each way, outside every budget.

A real aiohttp device (no automatic Pongs) sends a file in its Pings, Pongs and its Close reason,
and logs every control frame it receives; a real aiohttp client with the session's cookie does
the same towards it.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Self

import aiohttp
import pytest
from aiohttp import WSMsgType, web

from gateway.proxy.routes import SessionRoute
from lab.sites import serve
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
        self.port = await serve(self._runner)
        return self

    async def __aexit__(self, *_exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


@pytest.fixture
async def device() -> AsyncIterator[ControlFrameDevice]:
    async with ControlFrameDevice() as d:
        yield d


async def _session(harness: ProxyHarness, port: int, label: str) -> SessionClient:
    """A launched session to the device on ``port``."""
    sid = uuid.uuid4().hex[:12]
    route = SessionRoute(sid, harness.proxy.session_host(sid), "127.0.0.1", port, f"http://127.0.0.1:{port}", "http",
                         None, datetime.now(UTC) + timedelta(minutes=30), 600, label, "ACME Print Customer")
    harness.routes.add(route)
    client = SessionClient(harness, route)
    await client.launch()
    assert client.cookie is not None
    return client


async def test_ping_pong_and_close_reason_carry_nothing_across(harness: ProxyHarness, device: ControlFrameDevice) -> None:
    client = await _session(harness, device.port, "Pinging printer")
    sid, cookie = client.route.session_id, client.cookie or ""
    got_control: list[tuple[str, bytes]] = []
    pongs_to_mine: list[bytes] = []
    async with aiohttp.ClientSession() as http:
        sock = await http.ws_connect(f"http://127.0.0.1:{harness.proxy.port}/ws", autoping=False,
                                     headers={"host": client.netloc, "cookie": cookie})
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


def _frame(opcode: int, payload: bytes, *, fin: bool, mask: bool = False) -> bytes:
    """One WebSocket frame (payloads under 126 bytes), masked as a client must."""
    head = bytes([(0x80 if fin else 0) | opcode, (0x80 if mask else 0) | len(payload)])
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


async def _read_frames(reader: asyncio.StreamReader, until_opcode: int) -> list[tuple[int, bytes]]:
    """Unmasked frames from the proxy (short ones), up to one of ``until_opcode``."""
    frames = []
    while True:
        b0, b1 = await reader.readexactly(2)
        size = b1 & 0x7F
        if size == 126:
            size = int.from_bytes(await reader.readexactly(2), "big")
        payload = await reader.readexactly(size)
        frames.append((b0 & 0x0F, payload))
        if b0 & 0x0F == until_opcode:
            return frames


class RawWebSocketDevice:
    """A raw WebSocket device: answers the handshake, then ``converse`` (a subclass's) runs."""

    def __init__(self) -> None:
        self.port = 0
        self._server: asyncio.Server | None = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        key = next(line.split(b":", 1)[1].strip() for line in head.split(b"\r\n")
                   if line.lower().startswith(b"sec-websocket-key:"))
        accept = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
        writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n")
        try:
            await self.converse(reader, writer)
        finally:
            writer.close()

    async def converse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_exc: object) -> None:
        assert self._server is not None
        self._server.close()


class FragmentingDevice(RawWebSocketDevice):
    """Sends one text message of spaces in 32 fragments whose lengths are a file's bytes, then
    logs the Close it receives."""

    def __init__(self) -> None:
        super().__init__()
        self.lengths = [1 + b % 100 for b in DOWN[:32]]
        self.close_payload: bytes | None = None

    async def converse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for i, size in enumerate(self.lengths):
            last = i == len(self.lengths) - 1
            writer.write(_frame(0x1 if i == 0 else 0x0, b" " * size, fin=last))
        await writer.drain()
        self.close_payload = await asyncio.wait_for(_read_masked_close(reader), 10)


async def _read_masked_close(reader: asyncio.StreamReader) -> bytes:
    """The payload of the first Close frame from the proxy (client frames to a device are masked)."""
    while True:
        b0, b1 = await reader.readexactly(2)
        size = b1 & 0x7F
        key = await reader.readexactly(4) if b1 & 0x80 else b"\0\0\0\0"
        payload = bytes(b ^ key[i % 4] for i, b in enumerate(await reader.readexactly(size)))
        if b0 & 0x0F == 0x8:
            return payload


async def test_fragment_lengths_and_close_codes_carry_nothing_across(harness: ProxyHarness) -> None:
    """A message reaches the other side as one frame, whatever its fragments were (their lengths
    carried a file, tester wsc); a Close code outside RFC 6455's own arrives as 1000."""
    async with FragmentingDevice() as device:
        client = await _session(harness, device.port, "Fragmenting printer")
        reader, writer = await asyncio.open_connection("127.0.0.1", harness.proxy.port)
        try:
            writer.write(f"GET /ws HTTP/1.1\r\nHost: {client.netloc}\r\nCookie: {client.cookie}\r\n"
                         "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
                         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n".encode())
            await writer.drain()
            answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            assert answer.startswith(b"HTTP/1.1 101"), answer
            frames = await asyncio.wait_for(_read_frames(reader, until_opcode=0x1), 10)
            assert frames == [(0x1, b" " * sum(device.lengths))]  # one frame, not 32
            writer.write(_frame(0x8, (4321).to_bytes(2, "big") + b"bye", fin=True, mask=True))
            await writer.drain()
            async with asyncio.timeout(10):
                while device.close_payload is None:
                    await asyncio.sleep(0.05)
        finally:
            writer.close()
            await client.aclose()
    assert device.close_payload == (1000).to_bytes(2, "big")  # the code normalised, the reason gone
