"""aiohttp servers in this process on a port the kernel picks as they bind.

A server that binds in the process that wants its port needs no port picked beforehand
(``lab.ports``, for servers in other processes, closes its probe before the server binds, and
anything could take the port in between): it binds port 0 and reads back the port it got, which
nothing else can hold by then.
"""

from __future__ import annotations

import ssl

from aiohttp import web


async def serve(runner: web.AppRunner, host: str = "127.0.0.1", *, ssl_context: ssl.SSLContext | None = None) -> int:
    """Start ``runner`` (already set up) on ``host`` at a port of the kernel's choosing; return it."""
    site = web.TCPSite(runner, host, 0, ssl_context=ssl_context)
    await site.start()
    sockets = getattr(site._server, "sockets", None)  # aiohttp keeps the listening sockets only there
    if not sockets:
        raise OSError(f"the server on {host} did not start listening")
    return int(sockets[0].getsockname()[1])
