"""WebSocket frames are never inflated by the proxy (issue 21: permessage-deflate without a bound).

A few KB of deflate can inflate to gigabytes before any check sees the message. The browser's
permessage-deflate offer is not passed to the device, so no compressed frame may cross; a
compressed frame anyway is a protocol error that closes the WebSocket without inflating it, and a
device that answers with an extension nobody offered is refused and audited. Real clients:
aiohttp's WebSocket client (which offers permessage-deflate) and a hand-written one that sends a
compressed frame regardless.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import struct
import zlib
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import cast

import aiohttp
import pytest

from tests.proxy.conftest import ProxyHarness, SessionClient
from tests.proxy.hostile_device import HostileDevice
from tests.proxy.test_adversarial import (
    blocked_record,
    count_blocked,
    open_route,
    still_serves_pages,
)

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


@pytest.fixture(scope="module")
async def hostile() -> AsyncIterator[HostileDevice]:
    async with HostileDevice() as device:
        yield device


@pytest.fixture(scope="module")
async def client(harness: ProxyHarness, hostile: HostileDevice) -> AsyncIterator[SessionClient]:
    c = SessionClient(harness, open_route(harness, hostile))
    await c.launch()
    yield c
    await c.aclose()


def ws_heads(device: HostileDevice, since: int) -> list[bytes]:
    return [r.raw.lower() for r in device.state.log[since:] if r.raw.startswith(b"GET /ws")]


async def test_the_deflate_offer_never_reaches_the_device_and_frames_cross_uncompressed(
    harness: ProxyHarness, client: SessionClient, hostile: HostileDevice,
) -> None:
    mark = len(hostile.state.log)
    async with aiohttp.ClientSession() as http:
        sock = await http.ws_connect(f"http://127.0.0.1:{harness.proxy.port}/ws", compress=15,
                                     headers={"host": client.netloc, "cookie": client.cookie or ""})
        try:
            assert sock.compress == 0  # nothing negotiated: neither side may compress
            await sock.send_str("status please")
            async with asyncio.timeout(10):
                while True:
                    msg = await sock.receive()
                    assert msg.type == aiohttp.WSMsgType.TEXT, msg
                    if '"echo"' in msg.data:
                        break
            assert json.loads(msg.data) == {"echo": len("status please")}
        finally:
            await sock.close()
    heads = ws_heads(hostile, mark)
    assert heads and all(b"sec-websocket-extensions" not in h and b"permessage-deflate" not in h for h in heads)
    await still_serves_pages(client)


def _frame(payload: bytes, *, rsv1: bool, opcode: int = 0x1) -> bytes:
    """One masked client frame (RFC 6455 5.2); ``rsv1`` marks it compressed (RFC 7692)."""
    mask = os.urandom(4)
    head = bytes([0x80 | (0x40 if rsv1 else 0) | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack(">H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack(">Q", n)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


async def test_a_compressed_bomb_frame_closes_the_websocket_uninflated(
    harness: ProxyHarness, client: SessionClient, hostile: HostileDevice,
) -> None:
    """64 MiB of base64-looking text deflated to ~64 KB, sent as a compressed frame although
    nothing was negotiated: the proxy closes the connection; the device never sees any of it."""
    z = zlib.compressobj(9, zlib.DEFLATED, -15)
    bomb = z.compress(b"QUJD" * (16 * 1024 * 1024)) + z.flush(zlib.Z_SYNC_FLUSH)
    bomb = bomb[:-4]  # RFC 7692: the trailing 00 00 ff ff is left out
    mark = len(hostile.state.log)
    reader, writer = await asyncio.open_connection("127.0.0.1", harness.proxy.port)
    try:
        key = base64.b64encode(os.urandom(16))
        writer.write(b"GET /ws HTTP/1.1\r\nHost: " + client.netloc.encode() + b"\r\nCookie: "
                     + (client.cookie or "").encode() + b"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n"
                     b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n")
        async with asyncio.timeout(10):
            head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        assert b"sec-websocket-extensions" not in head.lower()
        accept = base64.b64encode(hashlib.sha1(key + WS_GUID).digest())
        assert accept in head
        writer.write(_frame(bomb, rsv1=True))
        await writer.drain()
        closed = False
        async with asyncio.timeout(10):
            while not closed:
                data = await reader.read(65536)
                closed = not data or b"\x88" in data[:1]  # EOF or a close frame
    finally:
        writer.close()
    assert closed
    assert not hostile.state.saw(b"QUJDQUJDQUJDQUJD", since=mark)
    await still_serves_pages(client)


async def _device_offering_deflate() -> tuple[asyncio.Server, int]:
    """A "device" that switches to WebSocket with permessage-deflate whatever was offered."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            key = next(line.split(b":", 1)[1].strip() for line in head.split(b"\r\n")
                       if line.lower().startswith(b"sec-websocket-key:"))
            accept = base64.b64encode(hashlib.sha1(key + WS_GUID).digest())
            writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                         b"Sec-WebSocket-Accept: " + accept + b"\r\n"
                         b"Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n")
            await writer.drain()
            await reader.read(65536)
        except (ConnectionError, asyncio.IncompleteReadError, StopIteration):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def test_a_device_answering_with_an_extension_nobody_offered_is_refused_and_audited(
    harness: ProxyHarness,
) -> None:
    server, port = await _device_offering_deflate()
    device = cast(HostileDevice, SimpleNamespace(host="127.0.0.1", port=port, origin=f"http://127.0.0.1:{port}"))
    c = SessionClient(harness, open_route(harness, device))
    try:
        await c.launch()
        before = await count_blocked(harness, c)
        async with aiohttp.ClientSession() as http:
            with pytest.raises(aiohttp.ClientError):
                sock = await http.ws_connect(f"http://127.0.0.1:{harness.proxy.port}/ws", compress=15,
                                             headers={"host": c.netloc, "cookie": c.cookie or ""})
                await sock.close()
        rules: list[str] = []
        for _ in range(50):
            rules = [str(e.details["rule"]) for e in await blocked_record(harness, c, before)]
            if rules:
                break
            await asyncio.sleep(0.1)
        assert rules == ["websocket.extension"], rules
    finally:
        await c.aclose()
        server.close()
        await server.wait_closed()


async def test_a_message_past_the_bound_closes_the_websocket_unbuffered_and_is_audited(
    harness: ProxyHarness, client: SessionClient, hostile: HostileDevice,
) -> None:
    """A page script sending one 3 MiB message: the proxy stops buffering it at 1 MiB, closes the
    WebSocket with 1009 (message too big), the device sees none of it, the refusal is audited."""
    before = await count_blocked(harness, client)
    mark = len(hostile.state.log)
    marker = "TOOBIG-" + os.urandom(6).hex()
    async with aiohttp.ClientSession() as http:
        sock = await http.ws_connect(f"http://127.0.0.1:{harness.proxy.port}/ws",
                                     headers={"host": client.netloc, "cookie": client.cookie or ""})
        try:
            await sock.send_str(marker + " status " * (3 * 1024 * 1024 // 8))
            async with asyncio.timeout(15):
                while True:
                    msg = await sock.receive()
                    if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                        break
        finally:
            await sock.close()
    assert sock.close_code == 1009, (sock.close_code, msg)
    assert not hostile.state.saw(marker.encode(), since=mark)
    rules: list[str] = []
    for _ in range(50):
        rules = [str(e.details["rule"]) for e in await blocked_record(harness, client, before)
                 if not str(e.details["rule"]).endswith("_from_device")]
        if rules:
            break
        await asyncio.sleep(0.1)
    assert rules == ["websocket.message_too_large"], rules
    await still_serves_pages(client)


async def test_a_compressed_frame_nobody_negotiated_is_dropped_closed_with_1002_and_audited(
    harness: ProxyHarness, client: SessionClient, hostile: HostileDevice,
) -> None:
    """Issue 21 F6: a small frame with RSV1 set (compressed, nothing negotiated) closes the
    WebSocket with 1002; that refusal leaves a ``dwa.transfer_blocked`` record."""
    before = await count_blocked(harness, client)
    mark = len(hostile.state.log)
    z = zlib.compressobj(9, zlib.DEFLATED, -15)
    payload = (z.compress(b"RSV1-SECRET-" + os.urandom(8).hex().encode()) + z.flush(zlib.Z_SYNC_FLUSH))[:-4]
    reader, writer = await asyncio.open_connection("127.0.0.1", harness.proxy.port)
    close = b""
    try:
        key = base64.b64encode(os.urandom(16))
        writer.write(b"GET /ws HTTP/1.1\r\nHost: " + client.netloc.encode() + b"\r\nCookie: "
                     + (client.cookie or "").encode() + b"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n\r\n")
        async with asyncio.timeout(10):
            head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        writer.write(_frame(payload, rsv1=True))
        await writer.drain()
        async with asyncio.timeout(10):
            while data := await reader.read(65536):
                close += data
    finally:
        writer.close()
    at = close.find(b"\x88")
    assert at >= 0 and struct.unpack(">H", close[at + 2 : at + 4])[0] == 1002, close[-40:]
    assert not any(r.what == "ws-text" for r in hostile.state.log[mark:])
    rules: list[str] = []
    for _ in range(50):
        rules = [str(e.details["rule"]) for e in await blocked_record(harness, client, before)
                 if not str(e.details["rule"]).endswith("_from_device")]  # the device's own greeting frames
        if rules:
            break
        await asyncio.sleep(0.1)
    assert rules == ["websocket.protocol_error"], rules
    await still_serves_pages(client)
