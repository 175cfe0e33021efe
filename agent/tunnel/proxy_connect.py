"""Reach the relay through an HTTP CONNECT proxy (customer networks often only allow that)."""

from __future__ import annotations

import asyncio
import base64
import socket
from urllib.parse import unquote, urlsplit

from printgate.errors import TunnelError

MAX_HEADER_BYTES = 16 * 1024


async def connect_via_http_proxy(
    proxy_url: str, host: str, port: int, *, timeout: float = 10.0
) -> socket.socket:
    """A connected socket to ``host:port`` tunnelled through ``proxy_url`` (http://[user:pass@]h:p)."""
    url = urlsplit(proxy_url)
    if url.scheme != "http" or not url.hostname:
        raise TunnelError(f"HTTP proxy {proxy_url!r} must look like http://host:port")
    proxy_addr = (url.hostname, url.port or 8080)
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(*proxy_addr, type=socket.SOCK_STREAM)
    family, _type, _proto, _name, addr = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        async with asyncio.timeout(timeout):
            await loop.sock_connect(sock, addr)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            lines = [f"CONNECT {host}:{port} HTTP/1.1", f"Host: {host}:{port}"]
            if url.username is not None:
                creds = f"{unquote(url.username)}:{unquote(url.password or '')}".encode()
                lines.append(f"Proxy-Authorization: Basic {base64.b64encode(creds).decode()}")
            await loop.sock_sendall(sock, ("\r\n".join(lines) + "\r\n\r\n").encode())
            head = await _read_head(loop, sock)
    except TimeoutError:
        sock.close()
        raise TunnelError(f"HTTP proxy {proxy_addr[0]}:{proxy_addr[1]} did not answer within {timeout:g} s") from None
    except OSError as exc:
        sock.close()
        raise TunnelError(f"cannot reach HTTP proxy {proxy_addr[0]}:{proxy_addr[1]}: {exc}") from None
    status = head.split(b"\r\n", 1)[0].decode("latin-1")
    parts = status.split()
    if len(parts) < 2 or parts[1] != "200":
        sock.close()
        raise TunnelError(f"HTTP proxy refused CONNECT to {host}:{port}: {status!r}")
    return sock


async def _read_head(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> bytes:
    # byte by byte: the relay's SSH banner may follow the proxy's answer at once,
    # and it must stay in the socket for the SSH client.
    head = bytearray()
    while not head.endswith(b"\r\n\r\n"):
        if len(head) >= MAX_HEADER_BYTES:
            raise TunnelError("HTTP proxy answer headers are too long")
        chunk = await loop.sock_recv(sock, 1)
        if not chunk:
            raise TunnelError("HTTP proxy closed the connection during CONNECT")
        head += chunk
    return bytes(head)
