"""HTTP CONNECT through a customer's proxy (optional Basic auth): the agent's one client.

gRPC uses grpc-core's own CONNECT support (``grpc.http_proxy`` channel arg);
everything else gets a socket connected through the proxy from here: the SSH
tunnel to the relay (``await open_tunnel(...)``, then
``asyncssh.connect(sock=sock)``) and MQTT (``connect_via_proxy`` in paho's own
I/O thread). The proxy's answer is read byte by byte: whatever follows its
header (the relay's SSH banner) stays in the socket for the next protocol.
"""

from __future__ import annotations

import asyncio
import base64
import socket
import time
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from printgate.errors import AgentUnavailable, ConfigError, PrintgateError

MAX_HEADER_BYTES = 16 * 1024
DEFAULT_PORT = 3128


@dataclass(frozen=True, slots=True)
class ProxyUrl:
    host: str
    port: int
    username: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, url: str, *, default_port: int = DEFAULT_PORT) -> ProxyUrl:
        """``http://[user:password@]host[:port]`` (the scheme may be left out)."""
        parts = urlsplit(url if "://" in url else f"http://{url}")
        if parts.scheme != "http" or not parts.hostname:
            raise ConfigError(f"proxy URL {parts.scheme}://{parts.hostname} is not http://host:port")
        return cls(parts.hostname, parts.port or default_port,
                   unquote(parts.username) if parts.username else None,
                   unquote(parts.password) if parts.password else None)

    def connect_request(self, host: str, port: int) -> bytes:
        lines = [f"CONNECT {host}:{port} HTTP/1.1", f"Host: {host}:{port}"]
        if self.username is not None:
            cred = base64.b64encode(f"{self.username}:{self.password or ''}".encode()).decode()
            lines.append(f"Proxy-Authorization: Basic {cred}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def open_tunnel(proxy: str | ProxyUrl, host: str, port: int, *, timeout: float = 10.0,
                      error: type[PrintgateError] = AgentUnavailable) -> socket.socket:
    """A socket connected to ``host:port`` through the proxy (CONNECT answered 200).

    Failures raise ``error`` (the caller's error type) with a message naming the proxy.
    """
    url = proxy if isinstance(proxy, ProxyUrl) else ProxyUrl.parse(proxy)
    return await asyncio.to_thread(connect_via_proxy, url, host, port, timeout, error=error)


def connect_via_proxy(url: ProxyUrl, host: str, port: int, timeout: float, *,
                      error: type[PrintgateError] = AgentUnavailable) -> socket.socket:
    """Blocking variant of ``open_tunnel`` (for libraries with their own I/O threads).

    ``timeout`` bounds the whole exchange: connecting to the proxy and its answer.
    """
    deadline = time.monotonic() + timeout
    where = f"{url.host}:{url.port}"
    try:
        sock = socket.create_connection((url.host, url.port), timeout=timeout)
    except OSError as exc:
        raise error(f"cannot reach HTTP proxy {where}: {exc}") from None
    try:
        sock.sendall(url.connect_request(host, port))
        head = _read_head(sock, deadline, where, error)
    except TimeoutError:
        sock.close()
        raise error(f"HTTP proxy {where} did not answer CONNECT within {timeout:g} s") from None
    except OSError as exc:
        sock.close()
        raise error(f"HTTP proxy {where} did not answer CONNECT: {exc}") from None
    except PrintgateError:
        sock.close()
        raise
    status = head.split(b"\r\n", 1)[0].decode("latin-1")
    parts = status.split()
    if len(parts) < 2 or parts[1] != "200":
        sock.close()
        hint = " (proxy authentication required: put user:password in the proxy URL)" if parts[1:2] == ["407"] else ""
        raise error(f"HTTP proxy {where} refused CONNECT {host}:{port}: {status}{hint}")
    sock.settimeout(None)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _read_head(sock: socket.socket, deadline: float, where: str, error: type[PrintgateError]) -> bytes:
    head = bytearray()
    while not head.endswith(b"\r\n\r\n"):  # byte-wise: nothing after the header is ours
        if len(head) >= MAX_HEADER_BYTES:
            raise error(f"HTTP proxy {where} answered with headers over {MAX_HEADER_BYTES} bytes")
        sock.settimeout(max(0.001, deadline - time.monotonic()))
        chunk = sock.recv(1)
        if not chunk:
            raise error(f"HTTP proxy {where} closed the connection during CONNECT")
        head += chunk
    return bytes(head)
