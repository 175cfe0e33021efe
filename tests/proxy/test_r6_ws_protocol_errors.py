"""A frame that breaks the WebSocket protocol is a refusal with an audit record; a peer's own
Close with the same code is not (tester wsc: invalid UTF-8 closed the WebSocket with 1007 and left
no ``websocket.protocol_error`` record, which only a 1002 got; and any peer closing with 1002 of
its own accord was recorded as a refusal).

A raw WebSocket device and a raw client with the session's cookie, through a real proxy.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.proxy.conftest import ProxyHarness
from tests.proxy.test_r6_ws_control import RawWebSocketDevice, _frame, _session

BAD_UTF8 = b"status \xff\xfe\xfd"
CLOSE_1002 = (1002).to_bytes(2, "big") + b"bye"


async def _frames_until_close(reader: asyncio.StreamReader) -> list[tuple[int, bytes]]:
    """Every frame read (unmasked if masked) up to a Close or the end of the stream."""
    frames: list[tuple[int, bytes]] = []
    try:
        while True:
            b0, b1 = await reader.readexactly(2)
            size = b1 & 0x7F
            if size == 126:
                size = int.from_bytes(await reader.readexactly(2), "big")
            key = await reader.readexactly(4) if b1 & 0x80 else b"\0\0\0\0"
            payload = bytes(b ^ key[i % 4] for i, b in enumerate(await reader.readexactly(size)))
            frames.append((b0 & 0x0F, payload))
            if b0 & 0x0F == 0x8:
                return frames
    except (asyncio.IncompleteReadError, ConnectionError):
        return frames


class ScriptedDevice(RawWebSocketDevice):
    """Sends ``send`` (a frame, or nothing) after the handshake and keeps the frames it receives
    until a Close."""

    def __init__(self, send: bytes) -> None:
        super().__init__()
        self.send = send
        self.received: list[tuple[int, bytes]] | None = None

    async def converse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(self.send)
        await writer.drain()
        self.received = await asyncio.wait_for(_frames_until_close(reader), 10)


CASES = {
    # case: (what the device sends, what the browser sends, a refusal?, the sender, code the other side gets)
    "device-invalid-utf8": (_frame(0x1, BAD_UTF8, fin=True), b"", True, "device", 1007),
    "browser-invalid-utf8": (b"", _frame(0x1, BAD_UTF8, fin=True, mask=True), True, "browser", None),
    "device-closes-1002": (_frame(0x8, CLOSE_1002, fin=True), b"", False, "device", 1002),
    "browser-closes-1002": (b"", _frame(0x8, CLOSE_1002, fin=True, mask=True), False, "browser", 1002),
}


@pytest.mark.parametrize("case", CASES)
async def test_a_broken_frame_is_a_recorded_refusal_and_a_peers_own_close_is_not(harness: ProxyHarness,
                                                                                case: str) -> None:
    from_device, from_browser, refused, sender, code_across = CASES[case]
    async with ScriptedDevice(from_device) as device:
        client = await _session(harness, device.port, "Scripted printer")
        reader, writer = await asyncio.open_connection("127.0.0.1", harness.proxy.port)
        try:
            writer.write(f"GET /ws HTTP/1.1\r\nHost: {client.netloc}\r\nCookie: {client.cookie}\r\n"
                         "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
                         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n".encode() + from_browser)
            await writer.drain()
            answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            assert answer.startswith(b"HTTP/1.1 101"), answer
            to_browser = await asyncio.wait_for(_frames_until_close(reader), 10)
            if to_browser and to_browser[-1][0] == 0x8:
                writer.write(_frame(0x8, to_browser[-1][1][:2], fin=True, mask=True))  # the closing handshake
                await writer.drain()
            async with asyncio.timeout(10):
                while device.received is None:
                    await asyncio.sleep(0.05)
        finally:
            writer.close()
        sid = client.route.session_id
        async with asyncio.timeout(10):  # the WebSocket's records are written when it ends
            while not [e for e in await harness.events(sid) if e.type == "dwa.websocket"]:
                await asyncio.sleep(0.1)
        await client.aclose()

    received = device.received or []
    assert not [f for f in received + to_browser if f[0] == 0x1]  # no text frame crossed, broken or not
    other_side = to_browser if sender == "device" else received
    if code_across is not None:
        assert other_side and other_side[-1][0] == 0x8, other_side
        assert int.from_bytes(other_side[-1][1][:2], "big") == code_across  # the reason never crosses
        assert other_side[-1][1][2:] == b""
    blocked = [e for e in await harness.events(sid)
               if e.type == "dwa.transfer_blocked" and e.details.get("rule") == "websocket.protocol_error"]
    if not refused:
        assert blocked == []  # a peer closing with 1002 of its own accord is not a refusal
        return
    (record,) = blocked
    assert record.details["direction"] == ("request" if sender == "browser" else "response")
    assert "(1007)" in str(record.details["reason"]) and sender in str(record.details["reason"])
    assert record.session_id == sid
