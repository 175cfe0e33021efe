"""The SSH reverse-tunnel relay: lifecycle, per-session state, limits and audit.

    async with Relay("127.0.0.1", 0, host_key_path=..., ca_key_path=..., audit=sink,
                     firewall=fw) as relay:
        cred = relay.issue_credential(sid, valid_seconds=900, agent_id="a1")
        host, port = await relay.wait_forward(sid, timeout=15)   # proxy connects here
        await relay.end_session(sid, "logout")
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import asyncssh

from gateway.firewall.base import Firewall
from gateway.relay import crypto_policy
from gateway.relay.admission import (
    MAX_USERNAMES,
    OVERFLOW,
    REASONS,
    USERNAME_MAX,
    AdmissionControl,
    AdmissionLimits,
    SourceWindow,
)
from gateway.relay.limits import RelayLimits
from gateway.relay.listeners import SessionListener, private_directory, socket_path_for
from gateway.relay.policy import Refusal
from gateway.relay.server import RelayConnection
from gateway.relay.ssh_ca import SessionCredential, SshCertificateAuthority, load_or_create_key
from printgate import metrics
from printgate.domain import AuditEventIn, Outcome, event_types
from printgate.errors import ConfigError, SessionGone, TunnelError
from printgate.interfaces import AuditSink
from printgate.keys import KeyStore
from printgate.logs import get_logger
from printgate.supervisor import Supervisor

log = get_logger("gateway.relay")


@dataclass
class _Session:
    session_id: str
    agent_id: str
    expires_at: float  # wall clock (the certificate's valid-before)
    forward: asyncio.Future[tuple[str, int]]
    server: RelayConnection | None = None
    listener: SessionListener | None = None
    listen_port: int = 0  # the session's loopback port, bound again when the agent reconnects
    bytes: int = 0
    connected_at: float = 0.0
    last_activity: float = 0.0
    closing: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


KEEPALIVE_COUNT_MAX = 3
REAPER_TASK = "relay-reaper"
MAX_UNWRITTEN = 10_000  # audit records kept while the sink is away; beyond, counted as lost
MAX_AUDITED_SOURCES = 10  # sources named one by one per flush of closed windows; the rest in one record


class Relay:
    def __init__(
        self,
        host: str,
        port: int,
        *,
        host_key_path: Path,
        ca_key_path: Path,
        audit: AuditSink,
        firewall: Firewall,
        limits: RelayLimits = RelayLimits(),
        tick_s: float = 1.0,
        tunnel_dir: Path | None = None,
        supervisor: Supervisor | None = None,
        keys: KeyStore | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self._host_key_path = host_key_path
        self._ca_key_path = ca_key_path
        self._audit = audit
        self._firewall = firewall
        self.limits = limits
        self._tick_s = tick_s
        # sessions' tunnel endpoints as Unix sockets only the gateway's user reaches (None: loopback TCP)
        self.tunnel_dir = tunnel_dir
        self._host_key: asyncssh.SSHKey | None = None
        self._ca: SshCertificateAuthority | None = None
        # the key directory (printgate.keys): host key and CA from it, followed across rotations; the
        # CAs trusted for session certificates are the current one and retired ones still in overlap
        self._keys = keys
        self._keys_version: object = None
        self._keys_checked = 0.0
        self._trusted_cas: list[bytes] = []
        self._acceptor: asyncssh.SSHAcceptor | None = None
        self._sessions: dict[str, _Session] = {}
        self._revoked: dict[str, float] = {}  # session id -> when its certificates expire anyway
        self._connections: set[RelayConnection] = set()  # admitted, from TCP accept until gone
        self._admission = AdmissionControl(AdmissionLimits(
            max_unauthenticated=limits.max_unauthenticated,
            max_unauthenticated_per_source=limits.max_unauthenticated_per_source,
            connections_per_source=limits.connections_per_source,
            source_window_s=limits.source_window_s,
        ))
        self._tasks: set[asyncio.Task[Any]] = set()
        self._reaper: asyncio.Task[None] | None = None
        # runs the reaper (restarted with back-off if it fails, health in /readyz) when given
        self._supervisor = supervisor
        self._unwritten: list[AuditEventIn] = []  # audit records the sink refused, written again by the reaper
        self._closed_windows: list[SourceWindow] = []  # audited together, at most once per source window
        self._windows_flushed_at = 0.0

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        if self.tunnel_dir is not None:
            private_directory(self.tunnel_dir)
        if self._keys is not None:
            self._load_keys()
        else:
            self._host_key = load_or_create_key(self._host_key_path)
            self._ca = SshCertificateAuthority(load_or_create_key(self._ca_key_path))
            self._trusted_cas = [self._ca.public_key.public_data]
        self._acceptor = await asyncssh.listen(
            self.host,
            self.port,
            server_factory=lambda: RelayConnection(self),
            server_host_keys=[self._host_key],
            server_version=crypto_policy.SERVER_VERSION,
            kex_algs=list(crypto_policy.KEX_ALGS),
            encryption_algs=list(crypto_policy.ENCRYPTION_ALGS),
            mac_algs=list(crypto_policy.MAC_ALGS),
            compression_algs=list(crypto_policy.COMPRESSION_ALGS),
            signature_algs=list(crypto_policy.SIGNATURE_ALGS),
            login_timeout=self.limits.handshake_timeout_s,
            keepalive_interval=self.limits.keepalive_s,
            keepalive_count_max=KEEPALIVE_COUNT_MAX,
            agent_forwarding=False,
            x11_forwarding=False,
            allow_pty=False,
            allow_scp=False,
            password_auth=False,
            kbdint_auth=False,
            gss_host=None,
            reuse_address=True,
            config=None,
        )
        self.port = self._acceptor.get_port()
        if self._supervisor is not None:
            self._supervisor.add(REAPER_TASK, self._reap_loop)
        else:
            self._reaper = asyncio.create_task(self._reap_loop(), name=REAPER_TASK)
        log.info("relay.started", host=self.host, port=self.port, fingerprint=self.host_key_fingerprint)

    async def aclose(self) -> None:
        if self._supervisor is not None:
            await self._supervisor.remove(REAPER_TASK)
        if self._reaper is not None:
            self._reaper.cancel()
            await asyncio.gather(self._reaper, return_exceptions=True)
            self._reaper = None
        for sid in list(self._sessions):
            await self.end_session(sid, "relay shutting down")
        if self._acceptor is not None:
            self._acceptor.close()
            await self._acceptor.wait_closed()
            self._acceptor = None
        for server in list(self._connections):
            if server.conn is not None:
                server.conn.abort()
        self._closed_windows += self._admission.drain()
        await self._emit_windows()
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        await self._write_unwritten()
        if self._unwritten:
            log.error("relay.audit_lost", records=len(self._unwritten),
                      types=sorted({e.type for e in self._unwritten}))
        if self.tunnel_dir is not None:
            with contextlib.suppress(OSError):  # only if empty: never another process's files
                self.tunnel_dir.rmdir()
        log.info("relay.stopped", port=self.port)

    async def __aenter__(self) -> Relay:
        await self.start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    # ------------------------------------------------------------------ keys
    def _load_keys(self) -> None:
        keys = self._keys
        assert keys is not None
        keys.ensure("relay-host-key")
        keys.ensure("relay-ca")
        self._keys_version = keys.version()
        host = asyncssh.import_private_key(keys.private_key("relay-host-key"))
        ca = asyncssh.import_private_key(keys.private_key("relay-ca"))
        trusted = [asyncssh.import_public_key(r.public).public_data for r in keys.trusted("relay-ca")]
        changed_host = self._host_key is not None and self._host_key.public_data != host.public_data
        self._host_key, self._ca, self._trusted_cas = host, SshCertificateAuthority(ca), trusted
        if changed_host and self._acceptor is not None:  # new connections get the new host key
            self._acceptor.update(server_host_keys=[host])
        if changed_host or self._keys_checked:
            log.info("relay.keys.reloaded", fingerprint=self.host_key_fingerprint,
                     trusted_cas=len(trusted))

    def refresh_keys(self, *, force: bool = False) -> None:
        """Follow a rotation in the key directory (checked at most once a second; a few stat calls)."""
        if self._keys is None:
            return
        now = time.monotonic()
        if not force and now - self._keys_checked < 1.0:
            return
        self._keys_checked = now
        if self._keys.version() != self._keys_version:
            try:
                self._load_keys()
            except (ConfigError, OSError, ValueError, asyncssh.KeyImportError) as exc:  # keep the keys loaded
                log.error("relay.keys.unreadable", error=str(exc),
                          hint="the key directory changed but cannot be read; using the keys loaded before")

    # ------------------------------------------------------------------ public API
    @property
    def host_key_fingerprint(self) -> str:
        self.refresh_keys()
        if self._host_key is None:
            raise TunnelError("the relay is not started: no host key loaded yet")
        return str(self._host_key.get_fingerprint("sha256"))

    @property
    def host_public_key(self) -> str:
        """The host public key line (``ssh-ed25519 AAAA...``) for OpenSSH known_hosts files."""
        if self._host_key is None:
            raise TunnelError("the relay is not started: no host key loaded yet")
        return self._host_key.export_public_key("openssh").decode().split()[0] + " " + \
            self._host_key.export_public_key("openssh").decode().split()[1]

    @property
    def certificate_authority(self) -> SshCertificateAuthority:
        return self._require_ca()

    @property
    def ca_public_key(self) -> str:
        """The CA public key line (``ssh-ed25519 AAAA...``), for OpenSSH ``TrustedUserCAKeys``."""
        return self._require_ca().public_key_line()

    def issue_credential(self, session_id: str, *, valid_seconds: int, agent_id: str) -> SessionCredential:
        """A certificate for ``session_id`` only; revoked by ``end_session``."""
        if session_id in self._revoked:
            raise SessionGone(f"session {session_id} has ended; open a new session")
        self.refresh_keys()
        credential = self._require_ca().issue(session_id, valid_seconds=valid_seconds, agent_id=agent_id)
        loop = asyncio.get_running_loop()
        existing = self._sessions.get(session_id)
        if existing is None:
            self._sessions[session_id] = _Session(
                session_id=session_id,
                agent_id=agent_id,
                expires_at=credential.expires_at.timestamp(),
                forward=loop.create_future(),
            )
        else:
            existing.expires_at = credential.expires_at.timestamp()
        log.info("relay.credential.issued", session=session_id, agent=agent_id, serial=credential.serial)
        return credential

    async def wait_forward(self, session_id: str, timeout: float) -> tuple[str, int]:
        session = self._sessions.get(session_id)
        if session is None:
            raise SessionGone(f"session {session_id} is unknown to the relay or has ended")
        try:
            return await asyncio.wait_for(asyncio.shield(session.forward), timeout)
        except TimeoutError:
            raise TunnelError(
                f"the agent did not open the tunnel for session {session_id} within {timeout:g} s; "
                "check that the agent is online and can reach the relay"
            ) from None

    async def end_session(self, session_id: str, reason: str) -> None:
        """Close the tunnel and its listener, revoke the credential; idempotent."""
        session = self._sessions.pop(session_id, None)
        if session is None:
            return
        self._revoked[session_id] = session.expires_at
        session.closing = True
        if not session.forward.done():
            session.forward.set_exception(SessionGone(f"session {session_id} ended: {reason}"))
            session.forward.exception()  # mark retrieved
        await self._close_tunnel(session)
        await self._emit(
            AuditEventIn(
                type=event_types.RELAY_SESSION_ENDED,
                session_id=session_id,
                actor=session.agent_id,
                details={"reason": reason, "bytes": session.bytes},
            )
        )
        log.info("relay.session.ended", session=session_id, reason=reason)

    def live_session_ids(self) -> list[str]:
        return list(self._sessions)

    @property
    def handshakes_in_progress(self) -> int:
        """Admitted connections not (or no longer) bound to a session: counted against the pre-auth caps."""
        return sum(1 for c in self._connections if c.session_id is None)

    def is_connected(self, session_id: str) -> bool:
        """True while the session's agent holds its SSH connection to the relay."""
        session = self._sessions.get(session_id)
        return session is not None and session.server is not None

    # ------------------------------------------------------------------ RelayCore (called by RelayConnection)
    def admit_connection(self, server: RelayConnection, peer_ip: str) -> bool:
        """Called at TCP accept, before the relay sends its version string; refusals are tallied."""
        pending = [c for c in self._connections if c.session_id is None]  # as handshakes_in_progress
        reason = self._admission.check(
            peer_ip, time.time(),
            firewall_allows=not self.limits.enforce_firewall or self._firewall.is_allowed(peer_ip, self.port),
            unauthenticated=len(pending),
            unauthenticated_from_source=sum(1 for c in pending if c.peer_ip == peer_ip),
        )
        if reason is None:
            self._connections.add(server)
            return True
        if self._admission.first_refusal(peer_ip, reason):  # one log line per source, reason and window
            log.warning("relay.connection.refused", peer=peer_ip, code=reason, reason=REASONS[reason])
        return False

    def authorise(self, server: RelayConnection, session_id: str, ca_key: asyncssh.SSHKey) -> bool:
        self.refresh_keys()
        if ca_key.public_data not in self._trusted_cas:  # current CA, or a retired one in its overlap
            return False
        session = self._sessions.get(session_id)
        return session is not None and not session.closing and session.expires_at > time.time()

    def authenticated(self, server: RelayConnection) -> None:
        session = self._sessions.get(server.session_id or "")
        conn = server.conn
        if session is None or conn is None:
            if conn is not None:
                conn.close()
            return
        if session.server is not None:
            self.refused(server, Refusal("connection", "second_connection",
                                         f"session {session.session_id} already has a tunnel"))
            conn.close()
            server.session_id = None
            return
        per_agent = sum(1 for s in self._sessions.values()
                        if s.agent_id == session.agent_id and s.server is not None)
        if per_agent >= self.limits.max_connections_per_agent:
            self.refused(server, Refusal("connection", "too_many_connections",
                                         f"agent {session.agent_id} has {per_agent} tunnels open"))
            conn.close()
            server.session_id = None
            return
        now = time.monotonic()
        self._admission.authenticated(server.peer_ip)
        session.server = server
        session.connected_at = now
        session.last_activity = now
        self._spawn(self._emit(AuditEventIn(
            type=event_types.RELAY_AGENT_CONNECTED, session_id=session.session_id, actor=session.agent_id,
            source_ip=server.peer_ip,
        )))

    def connection_gone(self, server: RelayConnection) -> None:
        self._connections.discard(server)
        if server.session_id is None:
            if server.username and self._admission.auth_failed(server.peer_ip, server.username, time.time()):
                self._spawn(self._emit(self._auth_failed_event(server.peer_ip, server.username)))
            return
        session = self._sessions.get(server.session_id)
        if session is None or session.server is not server:
            return
        session.server = None
        listener, session.listener = session.listener, None
        if listener is not None:
            listener.close()
            self._spawn(listener.wait_closed())
        if session.forward.done() and not session.closing:
            session.forward = asyncio.get_running_loop().create_future()
        self._spawn(self._emit(AuditEventIn(
            type=event_types.RELAY_TUNNEL_CLOSED, session_id=session.session_id, actor=session.agent_id,
            source_ip=server.peer_ip, details={"bytes": session.bytes},
        )))

    def refused(self, server: RelayConnection, refusal: Refusal) -> None:
        server.refusals += 1
        limit = self.limits.max_refusals_per_connection
        if server.refusals > limit:
            if server.refusals == limit + 1:
                refusal = Refusal("connection", "too_many_refusals",
                                  f"more than {limit} refused requests: connection closed")
                if server.conn is not None:
                    server.conn.close()
            else:
                return  # already closing; the audit trail is not an attacker's to flood
        log.warning("relay.refused", session=server.session_id, peer=server.peer_ip,
                    kind=refusal.kind, code=refusal.code)
        self._spawn(self._emit(AuditEventIn(
            type=event_types.RELAY_REQUEST_REFUSED, outcome=Outcome.DENIED, session_id=server.session_id,
            source_ip=server.peer_ip,
            details={"kind": refusal.kind, "code": refusal.code, "message": refusal.message,
                     **refusal.detail},
        )))

    async def open_forward(
        self, server: RelayConnection, listen_host: str
    ) -> asyncssh.SSHListener | bool:
        session = self._sessions.get(server.session_id or "")
        if session is None or session.closing or server.conn is None or session.server is not server:
            return False
        if session.listener is not None:
            self.refused(server, Refusal("forward", "second_forward",
                                         f"session {session.session_id} already has its forward"))
            return False
        listener = SessionListener(
            server.conn, session_id=session.session_id, listen_host=listen_host,
            meter=lambda n: self._meter(session, n), max_channels=self.limits.max_channels_per_tunnel,
            port=session.listen_port,
            socket_path=socket_path_for(self.tunnel_dir, session.session_id) if self.tunnel_dir else None,
        )
        try:
            await listener.start()
        except OSError as exc:  # the session's port was taken while the agent was away
            log.error("relay.forward.rebind_failed", session=session.session_id, port=session.listen_port,
                      error=str(exc))
            await self._emit(AuditEventIn(
                type=event_types.RELAY_FORWARD_FAILED, outcome=Outcome.FAILURE, session_id=session.session_id,
                actor=session.agent_id, source_ip=server.peer_ip,
                details={"port": session.listen_port, "error": str(exc)},
            ))
            return False
        reconnected = session.listen_port != 0
        session.listener, session.listen_port = listener, listener.get_port()
        if not session.forward.done():
            session.forward.set_result(listener.address)
        await self._emit(AuditEventIn(
            type=event_types.RELAY_FORWARD_OPENED, session_id=session.session_id, actor=session.agent_id,
            source_ip=server.peer_ip,
            details={"listener": f"{listener.address[0]}:{listener.address[1]}", "reconnected": reconnected},
        ))
        return listener

    # ------------------------------------------------------------------ internals
    def _require_ca(self) -> SshCertificateAuthority:
        if self._ca is None:
            raise TunnelError("the relay is not started: call start() first")
        return self._ca

    def _meter(self, session: _Session, n: int) -> None:
        session.bytes += n
        session.last_activity = time.monotonic()
        if session.bytes > self.limits.max_bytes and not session.closing:
            session.closing = True
            self._spawn(self._limit_hit(session, f"more than {self.limits.max_bytes} bytes"))

    async def _limit_hit(self, session: _Session, why: str) -> None:
        await self._emit(AuditEventIn(
            type=event_types.RELAY_LIMIT_REACHED, outcome=Outcome.BLOCKED, session_id=session.session_id,
            actor=session.agent_id, details={"limit": why},
        ))
        await self.end_session(session.session_id, f"limit reached: {why}")

    async def _close_tunnel(self, session: _Session) -> None:
        listener, session.listener = session.listener, None
        if listener is not None:
            listener.close()
            await listener.wait_closed()
        server = session.server
        if server is not None and server.conn is not None:
            server.conn.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.conn.wait_closed(), 5)

    async def _reap_loop(self) -> None:
        while True:
            await asyncio.sleep(self._tick_s)
            await self._write_unwritten()
            now_wall, now = time.time(), time.monotonic()
            self._closed_windows += self._admission.closed_windows(now_wall)
            if self._closed_windows and now_wall - self._windows_flushed_at >= self.limits.source_window_s:
                await self._emit_windows()
            for sid, expires in list(self._revoked.items()):
                if expires + 120 < now_wall:
                    del self._revoked[sid]
            for session in list(self._sessions.values()):
                why = None
                if session.expires_at <= now_wall:
                    why = "session credential expired"
                elif session.server is not None:
                    if now - session.last_activity > self.limits.idle_timeout_s:
                        why = f"idle for more than {self.limits.idle_timeout_s:g} s"
                    elif now - session.connected_at > self.limits.max_session_s:
                        why = f"open for more than {self.limits.max_session_s:g} s"
                if why is not None and not session.closing:
                    session.closing = True
                    await self._limit_hit(session, why)

    def _auth_failed_event(self, source: str, username: str) -> AuditEventIn:
        """The first failed login of a source in its window. A name that is one of our session ids
        (an agent retrying an ended session) is not personal; any other is the attacker's choice
        and may name a person: it goes to the personal fields, cut short."""
        if username in self._sessions or username in self._revoked:
            return AuditEventIn(type=event_types.RELAY_AUTH_FAILED, outcome=Outcome.DENIED, source_ip=source,
                                session_id=username[:64], details={"username": username[:80], "count": 1})
        return AuditEventIn(type=event_types.RELAY_AUTH_FAILED, outcome=Outcome.DENIED, source_ip=source,
                            details={"count": 1}, personal={"username": username[:USERNAME_MAX]})

    async def _emit_windows(self) -> None:
        """The closed windows, as at most ``MAX_AUDITED_SOURCES`` sources' records (those that did
        most) plus one record per type for all the others ("N other sources")."""
        windows, self._closed_windows = self._closed_windows, []
        self._windows_flushed_at = time.time()
        if not windows:
            return
        windows.sort(key=lambda w: (w.refused_total + w.auth_failed, w.source != OVERFLOW), reverse=True)
        named, rest = windows[:MAX_AUDITED_SOURCES], windows[MAX_AUDITED_SOURCES:]
        for window in named:
            for event in self._window_events(window):
                await self._emit(event)
        if rest:
            merged = SourceWindow(OVERFLOW, min(w.started_at for w in rest))
            for w in rest:
                merged.admitted += w.admitted
                merged.authenticated += w.authenticated
                merged.refused.update(w.refused)
                merged.auth_failed += max(0, w.auth_failed - 1)  # their first ones were audited already
                merged.usernames |= set(sorted(w.usernames)[:MAX_USERNAMES - len(merged.usernames)])
                merged.sources |= w.sources or {w.source}
            for event in self._window_events(merged, other_sources=len(rest)):
                await self._emit(event)

    def _window_events(self, window: SourceWindow, *, other_sources: int = 0) -> list[AuditEventIn]:
        """A source's window (or the overflow's): its refused connections, its failed logins."""
        source = None if window.source == OVERFLOW else window.source
        common: dict[str, object] = {
            "window_start": datetime.fromtimestamp(window.started_at, UTC).isoformat(),
            "window_seconds": self.limits.source_window_s,
        }
        if window.source == OVERFLOW:
            common["other_sources"] = other_sources or len(window.sources)
        events = []
        if window.refused_total:
            events.append(AuditEventIn(
                type=event_types.RELAY_CONNECTIONS_REFUSED, outcome=Outcome.DENIED, source_ip=source,
                details={"refused": window.refused_total, "admitted": window.admitted,
                         "authenticated": window.authenticated,
                         "by_reason": dict(sorted(window.refused.items())), **common},
            ))
        more = window.auth_failed - 1 if window.source != OVERFLOW or not other_sources else window.auth_failed
        if more > 0:
            names = sorted(window.usernames)[:MAX_USERNAMES]
            events.append(AuditEventIn(
                type=event_types.RELAY_AUTH_FAILED, outcome=Outcome.DENIED, source_ip=source,
                details={"count": more, "usernames_tried": len(window.usernames), **common},
                personal={"usernames": ", ".join(names)} if names else {},
            ))
        return events

    async def _emit(self, event: AuditEventIn) -> None:
        """Audit ``event``; one the sink refuses is kept (bounded) and written again by the reaper, and
        the reaper shows ``degraded`` meanwhile (never only a log line)."""
        if self._unwritten:  # in order: after those still waiting
            self._keep_unwritten(event)
            return
        try:
            await self._audit.append(event)
        except Exception as exc:  # the audit sink failing must not kill the relay loop
            self._audit_failed(exc)
            self._keep_unwritten(event)

    def _keep_unwritten(self, event: AuditEventIn) -> None:
        if len(self._unwritten) >= MAX_UNWRITTEN:
            metrics.AUDIT_RECORDS_LOST.labels("relay").inc()
            log.error("relay.audit_lost", type=event.type, session=event.session_id, kept=len(self._unwritten))
            return
        self._unwritten.append(event)

    def _audit_failed(self, exc: Exception) -> None:
        error = f"audit not written: {type(exc).__name__}: {exc}"
        log.error("relay.audit_failed", error=error, waiting=len(self._unwritten) + 1)
        if self._supervisor is not None:
            self._supervisor.degrade(REAPER_TASK, error)

    async def _write_unwritten(self) -> None:
        while self._unwritten:
            try:
                await self._audit.append(self._unwritten[0])
            except Exception as exc:
                self._audit_failed(exc)
                return
            self._unwritten.pop(0)
        if self._supervisor is not None:
            self._supervisor.recovered(REAPER_TASK)

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
