"""The agent's side of a DWA tunnel: one outbound SSH connection, one remote forward.

The relay's host key must match the pinned fingerprint; the agent asks for
exactly its session's forward, and every forwarded connection goes to the
session's target, never anywhere the relay names. ``verify`` (device
identity) runs before the tunnel opens and before each forwarded connection.
"""

from __future__ import annotations

import asyncio
import hmac
import socket
from collections.abc import Awaitable, Callable, Collection
from types import TracebackType

import asyncssh
from asyncssh.kex import get_kex_algs

from agent.errors import RELAY_AUTH_REFUSED, RELAY_HOST_KEY_MISMATCH
from agent.proxy_connect import ProxyUrl
from agent.proxy_connect import open_tunnel as proxy_tunnel
from agent.tunnel.channel_guard import guard_channel_opens
from printgate.domain import DwaTarget
from printgate.errors import ConfigError, IdentityMismatch, PrintgateError, TunnelError
from printgate.logs import get_logger
from printgate.net.splice import Splice
from printgate.net.ssh_tuning import drop_empty_ignore_packets

log = get_logger("agent.tunnel")
TUNNEL_PROXY_DEFAULT_PORT = 8080  # a proxy URL without a port (MQTT's default is 3128)

Verify = Callable[[], Awaitable[None]]

# A post-quantum hybrid first when this asyncssh build has one, then curve25519 (the relay offers no other)
KEX_ALGS = [alg for alg in ("mlkem768x25519-sha256", "curve25519-sha256", "curve25519-sha256@libssh.org")
            if alg.encode() in get_kex_algs()]
ENCRYPTION_ALGS = ["aes128-gcm@openssh.com", "aes256-gcm@openssh.com", "chacha20-poly1305@openssh.com"]
MAC_ALGS = ["hmac-sha2-256-etm@openssh.com", "hmac-sha2-512-etm@openssh.com"]
CHANNEL_MAX_PKTSIZE = 64 * 1024  # fewer packets (each: encrypt, decrypt, syscall); 128 KiB cost 3x CPU
CHANNEL_WINDOW = 2 * 1024 * 1024


class _PinnedRelay(asyncssh.SSHClient):
    def __init__(self, fingerprint: str | Collection[str]) -> None:
        # one pinned fingerprint, or the set trusted now (a host key rotation's overlap: old and new)
        self._fingerprints = [fingerprint] if isinstance(fingerprint, str) else list(fingerprint)
        self.seen_fingerprint: str | None = None
        self.lost: Exception | None = None  # why the connection ended, when it did not end cleanly

    def connection_made(self, conn: asyncssh.SSHClientConnection) -> None:
        drop_empty_ignore_packets(conn)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = exc
        if exc is not None:  # a clean close is ours or the relay's; anything else must be visible
            log.warning("tunnel.connection_lost", error=repr(exc))

    def validate_host_public_key(self, host: str, addr: str, port: int, key: asyncssh.SSHKey) -> bool:
        self.seen_fingerprint = str(key.get_fingerprint("sha256"))
        seen = self.seen_fingerprint.encode()
        return any([hmac.compare_digest(seen, fp.encode()) for fp in self._fingerprints])


class Tunnel:
    """An open tunnel; ``await aclose()`` ends it, ``await wait_closed()`` waits for the end."""

    def __init__(
        self, conn: asyncssh.SSHClientConnection, listener: asyncssh.SSHListener, session_id: str,
        target: DwaTarget, relay: _PinnedRelay | None = None,
    ) -> None:
        self._conn = conn
        self._relay = relay
        self._listener = listener
        self.session_id = session_id
        self.target = target
        self.relay_port = listener.get_port()
        self.refused_connections = 0  # forwarded connections refused by device verification
        self.forwarded_connections = 0  # forwarded connections piped to the target
        self.refused_channels: list[tuple[str, str]] = []  # (kind, detail) a relay tried: report these

    async def aclose(self) -> None:
        self._listener.close()
        self._conn.close()
        await self.wait_closed()
        log.info("tunnel.closed", session=self.session_id)

    async def wait_closed(self) -> None:
        await self._conn.wait_closed()

    @property
    def is_closed(self) -> bool:
        return self._conn.is_closed()

    @property
    def closed_cleanly(self) -> bool:
        """Closed with an SSH disconnect (the relay ended the session, or we closed it), not lost."""
        return self.is_closed and (self._relay is None or self._relay.lost is None)

    async def __aenter__(self) -> Tunnel:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


async def open_tunnel(
    relay_host: str,
    relay_port: int,
    *,
    host_key_fingerprint: str | Collection[str],
    credential_private_key: str,
    credential_certificate: str,
    session_id: str,
    target: DwaTarget,
    verify: Verify | None,
    http_proxy: str | None = None,
    connect_timeout: float = 10.0,
    on_refused: Callable[[str, str], None] | None = None,
    keepalive_s: float = 10.0,
) -> Tunnel:
    """Connect out to the relay and open the session's one remote forward.

    ``on_refused(kind, detail)`` hears of every channel the relay tries to open
    that the agent refuses (the runtime reports them to the gateway's audit)."""
    if verify is not None:
        await verify()  # IdentityMismatch propagates: no tunnel to a swapped device
    try:
        key = asyncssh.import_private_key(credential_private_key)
        cert = asyncssh.import_certificate(credential_certificate)
    except (asyncssh.KeyImportError, ValueError) as exc:
        raise TunnelError(f"session {session_id}: the relay credential is unreadable ({exc})") from None
    sock: socket.socket | None = None
    if http_proxy:
        try:
            proxy = ProxyUrl.parse(http_proxy, default_port=TUNNEL_PROXY_DEFAULT_PORT)
        except ConfigError as exc:
            raise TunnelError(exc.message) from None
        sock = await proxy_tunnel(proxy, relay_host, relay_port, timeout=connect_timeout, error=TunnelError)
    pinned = _PinnedRelay(host_key_fingerprint)
    try:
        async with asyncio.timeout(connect_timeout):
            conn = await asyncssh.connect(
                None if sock is not None else relay_host,
                None if sock is not None else relay_port,
                sock=sock,
                client_factory=lambda: pinned,
                known_hosts=([], [], []),
                username=session_id,
                client_keys=[(key, cert)],
                agent_path=None,
                agent_forwarding=False,
                preferred_auth=["publickey"],
                kex_algs=KEX_ALGS,
                encryption_algs=ENCRYPTION_ALGS,
                mac_algs=MAC_ALGS,
                compression_algs=["none"],
                server_host_key_algs=["ssh-ed25519"],
                gss_host=None,
                config=None,
                keepalive_interval=keepalive_s,  # a silently lost relay: reconnect after ~3x this
                keepalive_count_max=3,
            )
    except TimeoutError:
        raise TunnelError(f"the relay {relay_host}:{relay_port} did not answer within {connect_timeout:g} s") from None
    except asyncssh.HostKeyNotVerifiable:
        raise TunnelError(
            f"the relay {relay_host}:{relay_port} presented host key {pinned.seen_fingerprint}, "
            f"not the pinned {_names(host_key_fingerprint)}: refusing to connect (possible interception)",
            code=RELAY_HOST_KEY_MISMATCH,
        ) from None
    except asyncssh.PermissionDenied:
        raise TunnelError(
            f"the relay refused the credential of session {session_id} (expired, revoked or not ours)",
            code=RELAY_AUTH_REFUSED,
        ) from None
    except (OSError, asyncssh.Error) as exc:
        raise TunnelError(f"cannot connect to the relay {relay_host}:{relay_port}: {exc}") from None

    tunnel_ref: list[Tunnel] = []
    early_refusals: list[tuple[str, str]] = []

    def channel_refused(kind: str, detail: str) -> None:
        log.warning("tunnel.channel_refused", session=session_id, kind=kind, detail=detail)
        (tunnel_ref[0].refused_channels if tunnel_ref else early_refusals).append((kind, detail))
        if on_refused is not None:
            on_refused(kind, detail)

    guard_channel_opens(conn, channel_refused)

    async def connect_to_target(orig_host: str, orig_port: int) -> asyncssh.SSHTCPSession[bytes]:
        if verify is not None:
            try:
                await verify()
            except PrintgateError as exc:
                if tunnel_ref:
                    tunnel_ref[0].refused_connections += 1
                log.warning("tunnel.connection_refused", session=session_id, reason=exc.code)
                raise asyncssh.ChannelOpenError(
                    asyncssh.OPEN_ADMINISTRATIVELY_PROHIBITED, exc.message
                ) from None
        # the relay's originator is informational only: the destination is always the target
        log.debug("tunnel.connection", session=session_id, relay_origin=f"{orig_host[:64]}:{orig_port}",
                  target=f"{target.ip}:{target.port}")
        splice = Splice()
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(connect_timeout):
                await loop.create_connection(lambda: splice.socket_end, target.ip, target.port)
        except (OSError, TimeoutError) as exc:
            raise asyncssh.ChannelOpenError(
                asyncssh.OPEN_CONNECT_FAILED, f"device {target.ip}:{target.port} unreachable: {exc}"
            ) from None
        if tunnel_ref:
            tunnel_ref[0].forwarded_connections += 1
        return splice.channel_end

    try:
        listener = await conn.create_server(
            connect_to_target, session_id.lower(), 0, window=CHANNEL_WINDOW, max_pktsize=CHANNEL_MAX_PKTSIZE
        )
    except (asyncssh.Error, asyncssh.ChannelListenError) as exc:
        conn.close()
        raise TunnelError(f"the relay refused the forward of session {session_id}: {exc}") from None
    tunnel = Tunnel(conn, listener, session_id, target, pinned)
    tunnel.refused_channels.extend(early_refusals)
    tunnel_ref.append(tunnel)
    log.info("tunnel.opened", session=session_id, target=f"{target.ip}:{target.port}")
    return tunnel


__all__ = ["IdentityMismatch", "Tunnel", "open_tunnel"]


def _names(fingerprints: str | Collection[str]) -> str:
    return fingerprints if isinstance(fingerprints, str) else " or ".join(fingerprints)
