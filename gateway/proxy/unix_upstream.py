"""Upstream connections to a Unix socket: a session's tunnel endpoint is a socket file, not a port.

The relay listens for each session on a Unix socket in a directory only the
gateway's user can enter (``gateway.relay.listeners``), so no other local
process can reach the device past the proxy. A route names that socket as its
upstream host (an absolute path, port 0). mitmproxy connects upstream with
``asyncio.open_connection(host, port)`` and has no option for Unix sockets;
``install()`` makes that call open a Unix connection when the host is an
absolute path, and leaves every other call as it was.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

TUNNEL_DOWN = "the site's agent is not connected: the tunnel to the device is down"


class TunnelDown(ConnectionError):
    """No tunnel endpoint for the session (the agent stopped, restarts or lost its network).

    An ``OSError`` with a one-argument message: mitmproxy records ``str(exc)`` as the flow's
    error (the audit record's ``error``) and hands it to ``error_pages`` for the 502 page.
    """


def is_socket_path(host: str) -> bool:
    return host.startswith("/")


def install() -> None:
    """Let ``asyncio.open_connection`` reach Unix sockets named by an absolute path (idempotent)."""
    original = asyncio.open_connection
    if getattr(original, "_printgate_unix", False):
        return

    @functools.wraps(original)
    async def open_connection(host: Any = None, port: Any = None, **kw: Any) -> Any:
        if isinstance(host, str) and is_socket_path(host):
            kw.pop("local_addr", None)
            try:
                reader, writer = await asyncio.open_unix_connection(host, **kw)
            except (FileNotFoundError, ConnectionRefusedError) as exc:
                # the relay removes a session's socket when its tunnel goes: the agent is away
                raise TunnelDown(TUNNEL_DOWN) from exc
            return reader, _TcpLikeWriter(writer, host)
        return await original(host, port, **kw)

    open_connection._printgate_unix = True  # type: ignore[attr-defined]
    asyncio.open_connection = open_connection


class _TcpLikeWriter:
    """A StreamWriter whose peername/sockname look like an address tuple (mitmproxy formats them)."""

    def __init__(self, writer: asyncio.StreamWriter, path: str) -> None:
        self._writer = writer
        self._path = path

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name in ("peername", "sockname"):
            return (self._path, 0)
        return self._writer.get_extra_info(name, default)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._writer, name)
