"""The proxy's own HTTP client towards one session's device, for signing in with a stored
credential (login page, login post, a request answered again with credentials).

It connects where the session's tunnel ends (a loopback port or the relay's Unix socket), never
where a URL says, and speaks TLS to an HTTPS device only after the certificate matched the
session's pin: a changed certificate never receives a credential. httpcore does the HTTP/1.1.
"""

from __future__ import annotations

import hashlib
import ssl
import typing
from dataclasses import dataclass

import httpcore

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


class _PinnedStream(httpcore.AsyncNetworkStream):
    def __init__(self, inner: httpcore.AsyncNetworkStream, pin: str | None) -> None:
        self._inner = inner
        self._pin = pin

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self._inner.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._inner.aclose()

    def get_extra_info(self, info: str) -> typing.Any:
        return self._inner.get_extra_info(info)

    async def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                        timeout: float | None = None) -> httpcore.AsyncNetworkStream:
        tls = await self._inner.start_tls(ssl_context, server_hostname, timeout)
        obj = tls.get_extra_info("ssl_object")
        der = obj.getpeercert(binary_form=True) if obj is not None else None
        got = hashlib.sha256(der).hexdigest() if der else ""
        if not self._pin or got != self._pin.replace(":", "").lower():
            await tls.aclose()
            raise DeviceLoginFailed(
                f"the device's certificate ({got or 'none'}) is not the one pinned for this session; "
                "no credential was sent")
        return _PinnedStream(tls, None)


class _TunnelBackend(httpcore.AsyncNetworkBackend):
    """Connects to the session's tunnel end whatever host the request names."""

    def __init__(self, route: SessionRoute) -> None:
        self._route = route
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: typing.Iterable[typing.Any] | None = None) -> httpcore.AsyncNetworkStream:
        r = self._route
        if is_socket_path(r.upstream_host):
            stream = await self._inner.connect_unix_socket(r.upstream_host, timeout)
        else:
            stream = await self._inner.connect_tcp(r.upstream_host, r.upstream_port, timeout)
        return _PinnedStream(stream, r.pinned_fingerprint)

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: typing.Iterable[typing.Any] | None = None
                                  ) -> httpcore.AsyncNetworkStream:
        return await self.connect_tcp("", 0, timeout)

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class DeviceClient:
    """Requests to one session's device; ``aclose`` when the session ends."""

    def __init__(self, route: SessionRoute) -> None:
        self._route = route
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=_device_tls(), network_backend=_TunnelBackend(route), max_connections=4,
            keepalive_expiry=30.0,
        )

    async def send(self, method: str, path: str, headers: list[tuple[bytes, bytes]],
                   body: bytes = b"") -> DeviceAnswer:
        url = self._route.device_origin.rstrip("/") + path
        headers = [(k, v) for k, v in headers if k.lower() not in (b"content-length", b"transfer-encoding")]
        if body or method.upper() in ("POST", "PUT", "PATCH"):
            headers.append((b"content-length", str(len(body)).encode()))
        timeouts = {"connect": TIMEOUT_S, "read": TIMEOUT_S, "write": TIMEOUT_S, "pool": TIMEOUT_S}
        async with self._pool.stream(method.encode(), url, headers=headers, content=body,
                                     extensions={"timeout": timeouts}) as resp:
            chunks: list[bytes] = []
            size = 0
            async for chunk in resp.aiter_stream():
                size += len(chunk)
                if size > MAX_BODY:
                    raise DeviceLoginFailed(f"the device's answer to {path} is larger than {MAX_BODY} bytes")
                chunks.append(chunk)
            return DeviceAnswer(resp.status, list(resp.headers), b"".join(chunks))

    async def aclose(self) -> None:
        await self._pool.aclose()
