"""The per-session listener the proxy connects to: a session's tunnel endpoint.

In production the relay binds a Unix socket ``<tunnel_dir>/<session>.sock``
(mode 0600, in a directory of mode 0700 owned by the gateway's user): only the
gateway's own processes (the proxy and its workers) can connect, no other
local user can reach the device past the proxy. Without a ``socket_path`` it
binds ``127.0.0.1`` with a port the kernel picks (tests and benchmarks that
drive the relay alone). Either way, never a public address, never a port the
agent chose; when the agent reconnects after losing its connection, the same
endpoint is bound again, so the proxy's route to the session stays valid. Each
accepted connection is piped into a new ``forwarded-tcpip`` channel on the
session's SSH connection. Closing the listener also closes every connection it
accepted (and removes the socket file).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
from pathlib import Path

import asyncssh

from printgate.errors import ConfigError
from printgate.logs import get_logger
from printgate.net.splice import Meter, Splice

log = get_logger("gateway.relay.listener")

LOOPBACK = "127.0.0.1"
# A 100 KB page crosses the tunnel in two SSH packets instead of four (asyncssh's
# default is 32 KiB); every packet costs an encrypt, a decrypt and a syscall.
CHANNEL_MAX_PKTSIZE = 64 * 1024  # 128 KiB measured 3x the agent's CPU per 100 KB page
CHANNEL_WINDOW = 2 * 1024 * 1024
SOCKET_MODE = 0o600
MAX_SOCKET_PATH = 107  # sun_path is 108 bytes with its terminating NUL
_SESSION_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def socket_path_for(directory: Path, session_id: str) -> Path:
    """The Unix socket of ``session_id``'s tunnel in ``directory`` (same path on every rebind)."""
    if not _SESSION_ID.fullmatch(session_id):
        raise ConfigError(f"session id {session_id!r} cannot name a socket file")
    return directory / f"{session_id}.sock"


def private_directory(directory: Path) -> None:
    """Create ``directory`` (mode 0700) for the tunnel sockets, or check an existing one is private
    to this user: a directory others can enter, or owned by someone else, is refused."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = directory.stat()
    if st.st_uid != os.geteuid():
        raise ConfigError(f"tunnel socket directory {directory} belongs to uid {st.st_uid}, not to the "
                          f"gateway's user (uid {os.geteuid()}); remove it or choose another data_dir")
    if st.st_mode & 0o077:
        directory.chmod(0o700)
    longest = len(str(socket_path_for(directory, "x" * 16)))  # broker session ids: 16 hex
    if longest > MAX_SOCKET_PATH:
        raise ConfigError(f"tunnel socket directory {directory} is too long for Unix socket paths "
                          f"({longest} > {MAX_SOCKET_PATH} bytes); choose a shorter data_dir")


def _pseudo_port(session_id: str) -> int:
    """The port the agent's forward is known by on a Unix-socket listener (SSH needs a number)."""
    return 10000 + int.from_bytes(hashlib.sha256(session_id.encode()).digest()[:2]) % 50000


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
        socket_path: Path | None = None,
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
        self._socket_path = socket_path
        self._closed = asyncio.Event()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        if self._socket_path is not None:
            path = str(self._socket_path)
            # a stale socket file of this session (a previous bind) is replaced
            self._server = await loop.create_unix_server(self._accept, path, backlog=128)
            os.chmod(path, SOCKET_MODE)  # the directory (0700) already keeps others out
            self._port = self._port or _pseudo_port(self._session_id)
            log.info("relay.listener.open", session=self._session_id, socket=path)
            return
        self._server = await loop.create_server(self._accept, LOOPBACK, self._port, backlog=128,
                                                reuse_address=True)
        self._port = int(self._server.sockets[0].getsockname()[1])
        log.info("relay.listener.open", session=self._session_id, port=self._port)

    @property
    def address(self) -> tuple[str, int]:
        """Where the proxy connects: ``(socket path, 0)`` or ``(127.0.0.1, port)``."""
        if self._socket_path is not None:
            return str(self._socket_path), 0
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
        if self._socket_path is not None:
            with contextlib.suppress(FileNotFoundError):
                self._socket_path.unlink()
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
