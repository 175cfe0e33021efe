"""The relay's per-connection SSH policy: an ``asyncssh.SSHServer`` that denies by default.

Only OpenSSH certificate auth signed by the gateway CA for a live session is
accepted (asyncssh then checks principal == user and validity times). The one
thing granted is the session's own remote forward. A session channel is
accepted only into a ``RefusingChannel``, so each request on it (shell, exec,
sftp/scp subsystem, pty, env, agent/X11 forwarding) is refused and audited by
name; direct-tcpip, Unix sockets and any other forward are refused too. Every
refusal is reported to the relay, which audits it.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Protocol

import asyncssh

from gateway.relay.policy import Refusal, check_forward, refuse
from gateway.relay.refusing_session import RefusingChannel, RefusingSession
from printgate.logs import get_logger
from printgate.net.ssh_tuning import drop_empty_ignore_packets

log = get_logger("gateway.relay.server")

MAX_SESSION_CHANNELS = 2  # open at once; each only ever hears refusals


class RelayCore(Protocol):
    """What a connection's policy object needs from the relay that owns it."""

    def admit_connection(self, server: RelayConnection, peer_ip: str) -> bool: ...

    def connection_gone(self, server: RelayConnection) -> None: ...

    def authorise(self, server: RelayConnection, session_id: str, ca_key: asyncssh.SSHKey) -> bool: ...

    def authenticated(self, server: RelayConnection) -> None: ...

    def refused(self, server: RelayConnection, refusal: Refusal) -> None: ...

    async def open_forward(
        self, server: RelayConnection, listen_host: str
    ) -> asyncssh.SSHListener | bool: ...


class RelayConnection(asyncssh.SSHServer):
    def __init__(self, core: RelayCore) -> None:
        self._core = core
        self.conn: asyncssh.SSHServerConnection | None = None
        self.peer_ip = ""
        self.username = ""
        self.session_id: str | None = None  # set once authenticated
        self.forwards_open = 0
        self.session_channels = 0  # open RefusingChannels
        self.refusals = 0  # counted by the relay; past its limit the connection is closed

    # --- connection lifecycle
    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self.conn = conn
        drop_empty_ignore_packets(conn)
        peer = conn.get_extra_info("peername") or ("", 0)
        self.peer_ip = str(peer[0])
        if not self._core.admit_connection(self, self.peer_ip):
            conn.abort()  # before asyncssh sends its version string: the refused peer learns nothing

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None and self.session_id is not None:
            log.warning("relay.connection_lost", session=self.session_id, peer=self.peer_ip, error=repr(exc))
        self._core.connection_gone(self)

    # --- authentication: CA-signed certificates only
    def begin_auth(self, username: str) -> bool:
        self.username = username
        return True

    def password_auth_supported(self) -> bool:
        return False

    def kbdint_auth_supported(self) -> bool:
        return False

    def host_based_auth_supported(self) -> bool:
        return False

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        return False  # bare keys never; only certificates

    def validate_ca_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        return self._core.authorise(self, username, key)

    def auth_completed(self) -> None:
        self.session_id = self.username
        self._core.authenticated(self)

    # --- what the agent may ask for
    def server_requested(
        self, listen_host: str, listen_port: int
    ) -> bool | Awaitable[asyncssh.SSHListener | bool]:
        sid = self.session_id or ""
        refusal = check_forward(sid, listen_host, listen_port, forwards_open=self.forwards_open)
        if refusal is not None:
            self._core.refused(self, refusal)
            return False
        self.forwards_open += 1
        return self._core.open_forward(self, listen_host)

    def session_requested(self) -> bool | tuple[RefusingChannel, RefusingSession]:
        if self.conn is None or self.session_id is None:
            return False
        if self.session_channels >= MAX_SESSION_CHANNELS:
            self._core.refused(self, Refusal(
                "session", "too_many_channels",
                f"more than {MAX_SESSION_CHANNELS} session channels at once (none is ever granted)",
            ))
            return False
        self.session_channels += 1
        chan, session = RefusingChannel.open(self.conn, lambda r: self._core.refused(self, r))
        session.on_closed = self._session_channel_closed
        return chan, session

    def _session_channel_closed(self) -> None:
        self.session_channels -= 1

    def connection_requested(
        self, dest_host: str, dest_port: int, orig_host: str, orig_port: int
    ) -> bool:
        self._core.refused(self, refuse("direct-tcpip", f"local forward to {dest_host}:{dest_port}"))
        return False

    def unix_connection_requested(self, dest_path: str) -> bool:
        self._core.refused(self, refuse("direct-streamlocal", f"unix socket {dest_path}"))
        return False

    def unix_server_requested(self, listen_path: str) -> bool:
        self._core.refused(self, refuse("streamlocal-forward", f"unix socket {listen_path}"))
        return False

    def tun_requested(self, unit: int | None) -> bool:
        self._core.refused(self, refuse("tun", "layer 2/3 tunnels"))
        return False

    def tap_requested(self, unit: int | None) -> bool:
        self._core.refused(self, refuse("tap", "layer 2/3 tunnels"))
        return False
