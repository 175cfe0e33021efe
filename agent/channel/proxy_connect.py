"""HTTP CONNECT through a corporate proxy (optional Basic auth), for outbound TCP.

gRPC uses grpc-core's own CONNECT support (``grpc.http_proxy`` channel arg);
this module gives everything else (the SSH tunnel to the relay, MQTT) a
connected socket through the same proxy: ``sock = await open_tunnel(...)``
then e.g. ``asyncssh.connect(host, sock=sock)``.
"""

from __future__ import annotations

import asyncio
import base64
import socket
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from printgate.errors import AgentUnavailable, ConfigError


@dataclass(frozen=True, slots=True)
class ProxyUrl:
    host: str
    port: int
    username: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, url: str) -> ProxyUrl:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        if parts.scheme != "http" or not parts.hostname:
            raise ConfigError(f"proxy URL {parts.scheme}://{parts.hostname} is not http://host:port")
        return cls(parts.hostname, parts.port or 3128,
                   unquote(parts.username) if parts.username else None,
                   unquote(parts.password) if parts.password else None)

    def connect_request(self, host: str, port: int) -> bytes:
        lines = [f"CONNECT {host}:{port} HTTP/1.1", f"Host: {host}:{port}"]
        if self.username is not None:
            cred = base64.b64encode(f"{self.username}:{self.password or ''}".encode()).decode()
            lines.append(f"Proxy-Authorization: Basic {cred}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def open_tunnel(proxy: str, host: str, port: int, *, timeout: float = 10.0) -> socket.socket:
    """A socket connected to ``host:port`` through the proxy (CONNECT answered 200)."""
    url = ProxyUrl.parse(proxy)
    return await asyncio.to_thread(connect_via_proxy, url, host, port, timeout)


def connect_via_proxy(url: ProxyUrl, host: str, port: int, timeout: float) -> socket.socket:
    """Blocking variant of ``open_tunnel`` (for libraries with their own I/O threads)."""
    try:
        sock = socket.create_connection((url.host, url.port), timeout=timeout)
    except OSError as exc:
        raise AgentUnavailable(f"proxy {url.host}:{url.port} unreachable: {exc}") from exc
    try:
        sock.sendall(url.connect_request(host, port))
        head = b""
        while b"\r\n\r\n" not in head:  # read byte-wise: nothing after the header is ours
            chunk = sock.recv(1)
            if not chunk or len(head) > 8192:
                raise AgentUnavailable(f"proxy {url.host}:{url.port} closed during CONNECT")
            head += chunk
    except OSError as exc:
        sock.close()
        raise AgentUnavailable(f"proxy {url.host}:{url.port} did not answer CONNECT: {exc}") from exc
    except AgentUnavailable:
        sock.close()
        raise
    status = head.split(b"\r\n", 1)[0].decode("latin-1")
    parts = status.split(" ")
    if len(parts) < 2 or parts[1] != "200":
        sock.close()
        hint = " (proxy authentication required: put user:password in the proxy URL)" if "407" in parts[1:2] else ""
        raise AgentUnavailable(f"proxy refused CONNECT {host}:{port}: {status}{hint}")
    sock.settimeout(None)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock
