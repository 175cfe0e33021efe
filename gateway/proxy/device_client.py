"""The proxy's own HTTP client towards one session's device, for signing in with a stored
credential (login page, login post, a request answered again with credentials).

It connects where the session's tunnel ends (a loopback port or the relay's Unix socket), never
where a URL says, and sends nothing to an HTTPS device before its certificate matched the
session's pin: a changed certificate never receives a credential. h11 does the HTTP/1.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

import h11

from gateway.errors import DeviceLoginFailed
from gateway.proxy.routes import SessionRoute
from gateway.proxy.unix_upstream import is_socket_path

TIMEOUT_S = 10.0
MAX_BODY = 4 * 1024 * 1024  # a login page or an admin page; more is refused


@dataclass(frozen=True, slots=True)
class DeviceAnswer:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes

    def header(self, name: bytes) -> list[bytes]:
        return [v for k, v in self.headers if k.lower() == name]


def _device_tls() -> ssl.SSLContext:
    """Old devices speak old TLS with self-signed certificates; the pin replaces the CA check."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    return ctx


class DeviceClient:
    """Requests to one session's device over one kept-alive connection (h11 speaks HTTP/1.1);
    ``aclose`` when the session ends. Requests are sent one at a time."""

    def __init__(self, route: SessionRoute) -> None:
        self._route = route
        self._lock = asyncio.Lock()
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self._conn: h11.Connection | None = None

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        r = self._route
        tls = _device_tls() if r.device_scheme == "https" else None
        server_name = urlsplit(r.device_origin).hostname if tls else None
        async with asyncio.timeout(TIMEOUT_S):
            if is_socket_path(r.upstream_host):
                reader, writer = await asyncio.open_unix_connection(r.upstream_host, ssl=tls,
                                                                    server_hostname=server_name)
            else:
                reader, writer = await asyncio.open_connection(r.upstream_host, r.upstream_port, ssl=tls,
                                                               server_hostname=server_name)
        if tls is not None:  # the pin is checked before a single byte is sent
            obj = writer.get_extra_info("ssl_object")
            der = obj.getpeercert(binary_form=True) if obj is not None else None
            got = hashlib.sha256(der).hexdigest() if der else ""
            if not r.pinned_fingerprint or got != r.pinned_fingerprint.replace(":", "").lower():
                writer.close()
                raise DeviceLoginFailed(
                    f"the device's certificate ({got or 'none'}) is not the one pinned for this session; "
                    "no credential was sent")
        return reader, writer

    async def send(self, method: str, path: str, headers: list[tuple[bytes, bytes]],
                   body: bytes = b"") -> DeviceAnswer:
        async with self._lock:
            try:
                return await self._exchange(method, path, headers, body)
            except BaseException:
                await self._drop()
                raise

    async def _exchange(self, method: str, path: str, headers: list[tuple[bytes, bytes]],
                        body: bytes) -> DeviceAnswer:
        if self._streams is None or self._conn is None or self._streams[1].is_closing():
            self._streams, self._conn = await self._connect(), h11.Connection(h11.CLIENT)
        reader, writer = self._streams
        conn = self._conn
        fields = [(k, v) for k, v in headers if k.lower() not in _FRAMING]
        fields.append((b"content-length", str(len(body)).encode()))
        out = conn.send(h11.Request(method=method.encode(), target=path.encode(), headers=fields))
        if body:
            out += conn.send(h11.Data(data=body))
        out += conn.send(h11.EndOfMessage())
        writer.write(out)
        status, answer_headers, chunks, size = 0, [], [], 0
        async with asyncio.timeout(TIMEOUT_S):
            await writer.drain()
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    conn.receive_data(await reader.read(65536))
                elif isinstance(event, h11.Response):
                    status, answer_headers = event.status_code, list(event.headers)
                elif isinstance(event, h11.Data):
                    size += len(event.data)
                    if size > MAX_BODY:
                        raise DeviceLoginFailed(f"the device's answer to {path} is larger than {MAX_BODY} bytes")
                    chunks.append(bytes(event.data))
                elif isinstance(event, h11.EndOfMessage):
                    break
                elif isinstance(event, h11.ConnectionClosed):
                    raise DeviceLoginFailed(f"the device closed the connection while answering {path}")
        if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
            conn.start_next_cycle()  # keep the connection for the next request
        else:
            await self._drop()
        return DeviceAnswer(status, answer_headers, b"".join(chunks))

    async def _drop(self) -> None:
        streams, self._streams, self._conn = self._streams, None, None
        if streams is not None:
            streams[1].close()
            with contextlib.suppress(OSError, ssl.SSLError, TimeoutError):
                async with asyncio.timeout(1.0):
                    await streams[1].wait_closed()

    async def aclose(self) -> None:
        async with self._lock:
            await self._drop()


_FRAMING = (b"content-length", b"transfer-encoding", b"connection")
