"""The per-session loopback listener the proxy connects to.

Bound by the relay on ``127.0.0.1`` with a port the kernel picks (never a
public address, never a port the agent chose); when the agent reconnects after
losing its connection, the same port is bound again, so the proxy's route to
the session stays valid. Each accepted connection is
piped into a new ``forwarded-tcpip`` channel on the session's SSH connection.
Closing the listener also closes every connection it accepted.
"""

from __future__ import annotations

import asyncio

import asyncssh

from printgate.logs import get_logger
from printgate.net.splice import Meter, Splice

log = get_logger("gateway.relay.listener")

LOOPBACK = "127.0.0.1"
# A 100 KB page crosses the tunnel in two SSH packets instead of four (asyncssh's
# default is 32 KiB); every packet costs an encrypt, a decrypt and a syscall.
CHANNEL_MAX_PKTSIZE = 64 * 1024  # 128 KiB measured 3x the agent's CPU per 100 KB page
CHANNEL_WINDOW = 2 * 1024 * 1024


class SessionListener(asyncssh.SSHListener):
    def __init__(
        self,
        conn: asyncssh.SSHServerConnection,
        *,
        session_id: str,
        listen_host: str,
        meter: Meter,
        max_channels: int,
        port: int = 0,
    ) -> None:
        super().__init__()
        self._conn = conn
        self._session_id = session_id
        self._listen_host = listen_host
        self._meter = meter
        self._max_channels = max_channels
        self._server: asyncio.Server | None = None
        self._splices: set[Splice] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._port = port
        self._closed = asyncio.Event()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._accept, LOOPBACK, self._port, backlog=128,
                                                reuse_address=True)
        self._port = int(self._server.sockets[0].getsockname()[1])
        log.info("relay.listener.open", session=self._session_id, port=self._port)

    @property
    def address(self) -> tuple[str, int]:
        return LOOPBACK, self._port

    def get_port(self) -> int:
        return self._port

    def _accept(self) -> asyncio.Protocol:
        splice = Splice(self._meter, on_connected=self._connected)
        self._splices.add(splice)
        splice.closed.add_done_callback(lambda _f: self._splices.discard(splice))
        return splice.socket_end

    def _connected(self, splice: Splice) -> None:
        transport = splice.socket_end.transport
        if transport is None or self._closed.is_set():
            splice.close()
            return
        transport.pause_reading()  # until the SSH channel is open
        task = asyncio.get_running_loop().create_task(self._open_channel(splice, transport))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _open_channel(self, splice: Splice, transport: asyncio.Transport) -> None:
        if len(self._splices) > self._max_channels:
            log.warning("relay.listener.too_many_channels", session=self._session_id)
            splice.close()
            return
        peer = transport.get_extra_info("peername") or ("", 0)
        try:
            await self._conn.create_connection(
                lambda: splice.channel_end, self._listen_host, self._port, str(peer[0]), int(peer[1]),
                window=CHANNEL_WINDOW, max_pktsize=CHANNEL_MAX_PKTSIZE,
            )
        except (asyncssh.Error, OSError) as exc:
            log.info("relay.listener.channel_refused", session=self._session_id, error=str(exc))
            splice.close()
            return
        if not transport.is_closing():
            transport.resume_reading()

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        if self._server is not None:
            self._server.close()
        for splice in list(self._splices):
            splice.close()
        for task in list(self._tasks):
            task.cancel()
        log.info("relay.listener.closed", session=self._session_id, port=self._port)

    async def wait_closed(self) -> None:
        if self._server is not None:
            await self._server.wait_closed()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
