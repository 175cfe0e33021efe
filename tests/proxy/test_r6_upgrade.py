"""Nothing but a WebSocket follows a 101 (issue 21, round 6; tester xfer): a device that switches
protocols for any other request got a raw, unchecked two-way TCP pipe through the proxy (a ZIP
crossed both ways, 8 MB each, with no refusal), and a browser's ``Upgrade: TLS/1.2`` made a real
cupsd switch to TLS, after which a print job and a configuration file crossed.

The device here is a raw socket server that logs every byte it receives: it answers ``101``
followed by a ZIP, either always or only to a request that asks to upgrade.
"""

from __future__ import annotations

import asyncio
import io
import uuid
import zipfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from gateway.proxy.routes import SessionRoute
from tests.proxy.conftest import ProxyHarness, SessionClient


def _zip(name: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(name, "address book entry\n" * 300)
    return buf.getvalue()


FROM_DEVICE = _zip("export.csv")
TO_DEVICE = _zip("firmware.bin")
PAGE = b"<html><body><p>printer status: ready</p></body></html>"


class SwitchingDevice:
    """Answers 101 (``Upgrade: xfer``) and a ZIP right after it: to every request (``always``) or
    to those carrying an ``Upgrade`` field; otherwise a small page. Logs what it receives."""

    def __init__(self, *, always: bool) -> None:
        self.always = always
        self.heads: list[bytes] = []
        self.after_switch = bytearray()
        self.host, self.port = "127.0.0.1", 0
        self._server: asyncio.Server | None = None

    @property
    def origin(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                self.heads.append(head)
                asks = any(line.lower().startswith(b"upgrade:") for line in head.split(b"\r\n"))
                if self.always or asks:
                    writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: xfer\r\nConnection: Upgrade\r\n\r\n"
                                 + FROM_DEVICE)
                    await writer.drain()
                    while data := await asyncio.wait_for(reader.read(65536), 5):
                        self.after_switch += data
                    return
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: %d\r\n\r\n%s"
                             % (len(PAGE), PAGE))
                await writer.drain()
        except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()

    async def __aenter__(self) -> SwitchingDevice:
        self._server = await asyncio.start_server(self._handle, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_exc: object) -> None:
        assert self._server is not None
        self._server.close()


async def _session(harness: ProxyHarness, device: SwitchingDevice) -> SessionClient:
    sid = uuid.uuid4().hex[:12]
    route = SessionRoute(sid, harness.proxy.session_host(sid), device.host, device.port, device.origin, "http", None,
                         datetime.now(UTC) + timedelta(minutes=30), 600, "Switching printer", "ACME Print Customer")
    harness.routes.add(route)
    client = SessionClient(harness, route)
    await client.launch()
    return client


async def _raw_exchange(harness: ProxyHarness, client: SessionClient, extra: str) -> tuple[bytes, asyncio.StreamWriter]:
    """A GET with the session's cookie and ``extra`` header lines; everything the browser side
    receives within 3 s (or until the connection closes), then a ZIP sent on the same connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", harness.proxy.port)
    writer.write(f"GET /status HTTP/1.1\r\nHost: {client.netloc}\r\nCookie: {client.cookie}\r\n{extra}\r\n".encode())
    await writer.drain()
    got = b""
    try:
        while data := await asyncio.wait_for(reader.read(65536), 3):
            got += data
    except (TimeoutError, ConnectionError):
        pass
    try:
        writer.write(TO_DEVICE)
        await writer.drain()
    except ConnectionError:
        pass
    await asyncio.sleep(1.0)
    return got, writer


@pytest.fixture
async def switching(request: pytest.FixtureRequest) -> AsyncIterator[SwitchingDevice]:
    async with SwitchingDevice(always=request.param) as device:
        yield device


@pytest.mark.parametrize(("switching", "extra"), [
    (True, ""),  # the device switches on its own
    (True, "Connection: Upgrade\r\nUpgrade: xfer\r\n"),
    (True, "Connection: Upgrade\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n"),
    (True, "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"),  # a WebSocket handshake answered with xfer
], indirect=["switching"], ids=["unasked", "asked-xfer", "asked-h2c", "websocket-answered-xfer"])
async def test_a_switch_to_another_protocol_is_refused_and_nothing_crosses(
        harness: ProxyHarness, switching: SwitchingDevice, extra: str) -> None:
    client = await _session(harness, switching)
    try:
        got, writer = await _raw_exchange(harness, client, extra)
        writer.close()
        assert got.startswith(b"HTTP/1.1 403"), got[:200]
        assert b"upgrade.not_websocket" in got
        assert FROM_DEVICE[:64] not in got and b"PK\x03\x04" not in got
        assert b"PK\x03\x04" not in switching.after_switch  # the browser's ZIP never reached the device
        events = await harness.events(client.route.session_id)
        blocked = [e for e in events if e.type == "dwa.transfer_blocked"]
        assert [e.details["rule"] for e in blocked] == ["upgrade.not_websocket"], [(e.type, e.details) for e in events]
        assert blocked[0].session_id == client.route.session_id
    finally:
        await client.aclose()


@pytest.mark.parametrize("switching", [False], indirect=True)
@pytest.mark.parametrize("extra", [
    "Connection: Upgrade\r\nUpgrade: TLS/1.2, HTTP/1.1\r\n",  # RFC 2817: what made cupsd switch to TLS
    "Connection: keep-alive, Upgrade\r\nUpgrade: xfer\r\n",
    "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n",
])
async def test_an_upgrade_to_another_protocol_never_reaches_the_device(
        harness: ProxyHarness, switching: SwitchingDevice, extra: str) -> None:
    """The request is passed on without its upgrade: the device answers it as a plain request,
    and the session goes on serving pages on the same connection."""
    client = await _session(harness, switching)
    try:
        got, writer = await _raw_exchange(harness, client, extra)
        writer.close()
        assert got.startswith(b"HTTP/1.1 200"), got[:200]
        assert b"printer status: ready" in got  # the device's page (with the proxy's banner)
        (head,) = switching.heads[:1]
        lowered = head.lower()
        assert b"\r\nupgrade:" not in lowered and b"http2-settings" not in lowered, head
        assert not any(line.startswith(b"connection:") and b"upgrade" in line for line in lowered.split(b"\r\n")), head
        assert not switching.after_switch
        page = await client.request("GET", "/status")
        assert page.status_code == 200 and b"printer status: ready" in page.content
    finally:
        await client.aclose()
