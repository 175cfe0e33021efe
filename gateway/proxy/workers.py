"""ProxyWorkerPool: the DWA proxy as N worker processes on one port (SO_REUSEPORT).

mitmproxy is CPU-bound (~700 requests/s per core), so one process per core is
how the proxy scales. The pool keeps the authoritative ``RouteTable`` (the broker
adds, removes and issues launch tokens on it as with ``DwaProxy``) and the
callbacks (end, extend, timeout). Each worker process runs a ``DwaProxy`` with a
``ReplicaRouteTable`` fed over its control channel (``control_channel``):

- add/remove/extend of a route is broadcast to every worker;
- a launch token is redeemed here (one-time across workers); the new cookie's
  SHA-256 reaches every worker before the redeeming worker answers the browser;
- activity is reported by workers in batches; idleness is judged here with the
  activity of all workers (the pool's sweeper), maximum duration by everyone;
- "End session" and "More time" reach the pool's callbacks;
- each worker audits through its own ``AuditLog`` on ``database_url``;
- the session budgets (user data towards the device) are one tally here: a worker reserves
  each request's bytes before the request goes on (``budget``).

The pool holds a bound (not listening) SO_REUSEPORT socket so its port stays
reserved while workers restart. A worker that dies is restarted; one that keeps
dying (``max_restarts`` within a minute) is reported and left down (``failed``).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from gateway.errors import WorkerFailed
from gateway.proxy.addons.session_limits import expiry_reason
from gateway.proxy.budgets import TallyBook
from gateway.proxy.connection_limits import ConnectionLimits
from gateway.proxy.control_channel import (
    ControlPeer,
    Message,
    frame,
    route_to_json,
    tombstone_to_json,
)
from gateway.proxy.deps import ExtendRequest, PublicAddress, SessionTimeout
from gateway.proxy.limits import ProxyLimits
from gateway.proxy.routes import RouteChange, RouteTable, Tombstone, cookie_digest
from gateway.proxy.session_urls import SessionUrls
from printgate.errors import ConfigError
from printgate.lifecycle import Service, cancel_and_wait
from printgate.logs import get_logger

log = get_logger(__name__)

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
RESTART_WINDOW_S = 60.0


@dataclass(slots=True)
class _Worker:
    index: int
    proc: asyncio.subprocess.Process | None = None
    peer: ControlPeer | None = None
    serving: asyncio.Task[None] | None = None
    monitor: asyncio.Task[None] | None = None
    ready: asyncio.Future[int] | None = None
    restarts: list[float] = field(default_factory=list)


class ProxyWorkerPool(SessionUrls, Service):
    """Same surface as ``DwaProxy`` (``start``, ``aclose``, ``port``, ``routes``,
    ``public``, ``session_host``, ``session_origin``, ``launch_url``, ``flush_audit``)."""

    def __init__(
        self,
        listen_host: str,
        listen_port: int,
        *,
        workers: int,
        database_url: str,
        dwa_domain: str,
        routes: RouteTable,
        on_end_request: Callable[[str], Awaitable[None]],
        limits: ProxyLimits = ProxyLimits(),
        connection_limits: ConnectionLimits = ConnectionLimits(),
        on_session_timeout: SessionTimeout | None = None,
        on_extend_request: ExtendRequest | None = None,
        public_scheme: str = "http",
        public_port: int | None = None,
        certs: list[str] | None = None,
        confdir: Path | None = None,
        activity_interval_s: float = 0.25,
        max_restarts: int = 5,
        launch_token_ttl_s: int = 60,
        tombstone_ttl_s: int = 3600,
        portal_url: str = "",
        node_label: str | None = None,
    ) -> None:
        if workers < 1:
            raise ConfigError(f"proxy_workers must be at least 1, got {workers}")
        if public_scheme not in ("http", "https"):
            raise ConfigError(f"public_scheme must be http or https, got {public_scheme!r}")
        self._listen_host = listen_host
        self._listen_port = listen_port
        self._count = workers
        self._database_url = database_url
        self.dwa_domain = dwa_domain.strip(".").lower()
        self.node_label = node_label
        self.routes = routes
        self._on_end = on_end_request
        self._on_timeout = on_session_timeout
        self._on_extend = on_extend_request
        self._limits = limits
        self._connection_limits = connection_limits
        self._public_port = public_port
        self.public = PublicAddress(public_scheme, public_port or 0)
        self._certs = certs or []
        self._confdir = confdir
        self._activity_interval_s = activity_interval_s
        self._tally = TallyBook()  # the session budgets of every worker (gateway/proxy/budgets.py)
        self._max_restarts = max_restarts
        self._token_ttl_s = launch_token_ttl_s
        self._tombstone_ttl_s = tombstone_ttl_s
        self._csrf_key = secrets.token_bytes(32)
        self._portal_url = portal_url
        self._workers = [_Worker(i) for i in range(workers)]
        self._reservation: socket.socket | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._closing = False
        self.failed = False
        self.port = 0
        routes.on_change(self._broadcast)

    # --- lifecycle -----------------------------------------------------------
    async def start(self) -> None:
        self._closing = False
        self._reservation = self._reserve_port()
        self.port = int(self._reservation.getsockname()[1])
        if self._public_port is None:
            self.public.port = self.port
        try:
            await asyncio.gather(*(self._spawn(w) for w in self._workers))
        except BaseException:
            await self.aclose()
            raise
        self._sweeper = asyncio.create_task(self._sweep(), name="dwa-pool-sweeper")
        log.info("dwa.pool_started", host=self._listen_host, port=self.port, workers=self._count,
                 pids=[w.proc.pid for w in self._workers if w.proc])

    def _reserve_port(self) -> socket.socket:
        family = socket.AF_INET6 if ":" in self._listen_host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            sock.bind((self._listen_host, self._listen_port))
        except OSError as exc:
            sock.close()
            raise ConfigError(f"proxy pool cannot bind {self._listen_host}:{self._listen_port}: {exc}") from exc
        return sock  # bound, never listening: the kernel gives connections to the workers only

    async def aclose(self) -> None:
        self._closing = True
        await cancel_and_wait(self._sweeper)
        self._sweeper = None
        await asyncio.gather(*(self._stop(w) for w in self._workers), return_exceptions=True)
        if self._reservation is not None:
            self._reservation.close()
            self._reservation = None
        log.info("dwa.pool_stopped", port=self.port)

    async def _stop(self, w: _Worker) -> None:
        if w.monitor is not None:
            w.monitor.cancel()
            w.monitor = None
        proc, peer = w.proc, w.peer
        if peer is not None:
            peer.send({"op": "stop"})
        if proc is not None and proc.returncode is None:
            try:
                async with asyncio.timeout(STOP_TIMEOUT_S):
                    await proc.wait()
            except TimeoutError:
                log.error("dwa.worker_kill", worker=w.index, pid=proc.pid)
                proc.kill()
                await proc.wait()
        if peer is not None:
            await peer.aclose()
        await cancel_and_wait(w.serving)
        w.proc, w.peer, w.serving = None, None, None

    # --- worker processes ----------------------------------------------------
    def _config(self) -> Message:
        return {
            "op": "config",
            "listen_host": self._listen_host,
            "port": self.port,
            "dwa_domain": self.dwa_domain,
            "node_label": self.node_label,
            "public_scheme": self.public.scheme,
            "public_port": self.public.port,
            "certs": self._certs,
            "confdir": str(self._confdir) if self._confdir else "",
            "csrf_key": self._csrf_key.hex(),
            "portal_url": self._portal_url,
            "database_url": self._database_url,
            "limits": asdict(self._limits),
            "connection_limits": asdict(self._connection_limits),
            "activity_interval_s": self._activity_interval_s,
            "launch_token_ttl_s": self._token_ttl_s,
            "tombstone_ttl_s": self._tombstone_ttl_s,
            "routes": [
                {"route": route_to_json(r), "cookies": self.routes.cookie_digests(r.session_id)}
                for r in self.routes.live_routes()
            ],
        }

    async def _spawn(self, w: _Worker) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-O", "-m", "gateway.proxy.worker_process", str(theirs.fileno()),
                pass_fds=(theirs.fileno(),), stdin=asyncio.subprocess.DEVNULL, env=_worker_env(),
            )
        finally:
            theirs.close()
        reader, writer = await asyncio.open_unix_connection(sock=ours)
        # the configuration (with its snapshot of routes) goes first; every change after
        # it is broadcast to this peer in order, with no await in between
        writer.write(frame(self._config()))
        peer = ControlPeer(reader, writer, f"proxy worker {w.index}")
        w.proc, w.peer = proc, peer
        w.ready = asyncio.get_running_loop().create_future()
        w.serving = asyncio.create_task(peer.serve(self._handler(w)), name=f"dwa-pool-worker-{w.index}")
        try:
            async with asyncio.timeout(START_TIMEOUT_S):
                waiting: set[asyncio.Future[Any]] = {w.ready, w.serving}
                done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            if w.ready not in done:
                raise WorkerFailed(f"proxy worker {w.index} exited while starting (exit code {await proc.wait()}); "
                                   "see its log lines above")
        except TimeoutError as exc:
            proc.kill()
            raise WorkerFailed(f"proxy worker {w.index} did not start within {START_TIMEOUT_S:.0f} s") from exc
        w.monitor = asyncio.create_task(self._watch(w, proc), name=f"dwa-pool-watch-{w.index}")
        log.info("dwa.worker_started", worker=w.index, pid=proc.pid, port=self.port)

    async def _watch(self, w: _Worker, proc: asyncio.subprocess.Process) -> None:
        code = await proc.wait()
        if self._closing:
            return
        log.error("dwa.worker_died", worker=w.index, pid=proc.pid, exit_code=code)
        if w.peer is not None:
            await w.peer.aclose()
        w.proc, w.peer, w.monitor = None, None, None
        now = time.monotonic()
        w.restarts = [t for t in w.restarts if now - t < RESTART_WINDOW_S] + [now]
        if len(w.restarts) > self._max_restarts:
            self.failed = True
            log.critical("dwa.worker_failed", worker=w.index, restarts=len(w.restarts),
                         message="proxy worker keeps dying; it stays down, the pool serves with fewer workers")
            return
        try:
            await self._spawn(w)
        except WorkerFailed as exc:
            self.failed = True
            log.critical("dwa.worker_failed", worker=w.index, error=exc.message)

    def live_pids(self) -> list[int]:
        """Process ids of the workers that are running and listening."""
        return [
            w.proc.pid for w in self._workers
            if w.proc is not None and w.proc.returncode is None and w.ready is not None and w.ready.done()
        ]

    # --- the table, mirrored ---------------------------------------------------
    def _broadcast(self, change: RouteChange) -> None:
        message: Message
        if change.kind in ("add", "extend") and change.route is not None:
            if change.kind == "add":
                message = {"op": "add", "route": route_to_json(change.route)}
            else:
                message = {"op": "extend", "session_id": change.session_id,
                           "expires_at": change.route.expires_at.isoformat()}
        elif change.kind == "remove":
            message = {"op": "remove", "session_id": change.session_id, "reason": change.reason}
        elif change.kind == "cookie":
            message = {"op": "cookie", "session_id": change.session_id, "digest": change.cookie_digest}
        else:
            return
        for w in self._workers:
            if w.peer is not None:
                w.peer.send(message)

    async def sync(self) -> None:
        """Wait until every worker has applied every change broadcast so far."""
        await asyncio.gather(*(w.peer.ask("ping") for w in self._workers if w.peer is not None))

    async def flush_audit(self) -> None:
        """Wait until every worker stored its queued audit events."""
        await asyncio.gather(*(w.peer.ask("flush") for w in self._workers if w.peer is not None))

    # --- what workers ask ----------------------------------------------------
    def _handler(self, w: _Worker) -> Callable[[Message], Awaitable[Any]]:
        async def handle(message: Message) -> Any:
            op = message["op"]
            if op == "ready":
                if w.ready is not None and not w.ready.done():
                    w.ready.set_result(int(message["port"]))
                return None
            if op == "activity":
                for sid in message["sessions"]:
                    self.routes.touch(str(sid))
                return None
            if op == "typed":
                self.routes.mark_credential_typed(str(message["session_id"]))
                return None
            if op == "budget":
                answer = self._tally.reserve(str(message["key"]), int(message["size"]), int(message["budget"]),
                                             float(message["window_s"]))
                return {"ok": answer.ok, "used": answer.used, "resets_at": answer.resets_at}
            if op == "lookup":
                return self._lookup(str(message["host"]))
            if op == "redeem":
                return await self._redeem(str(message["host"]), str(message["token"]))
            if op == "end":
                await self._end(str(message["session_id"]))
                return None
            if op == "extend":
                return await self._extend(str(message["session_id"]))
            if op == "timeout":
                await self._end_on_timeout(str(message["session_id"]), str(message["reason"]))
                return None
            raise ValueError(f"unknown op {op!r} from proxy worker {w.index}")

        return handle

    def _lookup(self, host: str) -> Message | None:
        found = self.routes.by_host(host)
        if found is None:
            return None
        if isinstance(found, Tombstone):
            return {"kind": "tombstone", "tombstone": tombstone_to_json(found)}
        return {"kind": "route", "route": route_to_json(found),
                "cookies": self.routes.cookie_digests(found.session_id)}

    async def _redeem(self, host: str, token: str) -> Message:
        cookie = self.routes.redeem_launch_token(host, token)  # one-time: only here
        found = self.routes.by_host(host)
        session_id = found.session_id if found is not None else ""
        await self.sync()  # every worker knows the cookie before the browser gets it
        return {"cookie": cookie, "session_id": session_id, "digest": cookie_digest(cookie)}

    async def _end(self, session_id: str) -> None:
        await self._on_end(session_id)
        if self.routes.get(session_id) is not None:
            self.routes.remove(session_id, "ended by the technician")

    async def _extend(self, session_id: str) -> str | None:
        if self._on_extend is None:
            return None
        new_expiry = await self._on_extend(session_id)
        if new_expiry is None:
            return None
        if self.routes.get(session_id) is not None:
            self.routes.extend(session_id, new_expiry)
        return new_expiry.isoformat()

    async def _end_on_timeout(self, session_id: str, reason: str) -> None:
        if self.routes.get(session_id) is None:
            return  # already ended (by another worker, the sweeper or the broker)
        self.routes.remove(session_id, reason)
        log.info("dwa.session_timeout", session=session_id, reason=reason)
        if self._on_timeout is not None:
            await self._on_timeout(session_id, reason)

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(self._limits.sweep_interval_s)
            for route in self.routes.live_routes():
                reason = expiry_reason(self.routes, route)
                if reason is None:
                    continue
                try:
                    await self._end_on_timeout(route.session_id, reason)
                except Exception as exc:  # keep sweeping; operators see the failure
                    log.error("dwa.sweep_failed", session=route.session_id, error=str(exc))

    # --- URLs ------------------------------------------------------------------


def _worker_env() -> dict[str, str]:
    """The parent's environment, with the directory holding ``gateway`` first on the import
    path (workers import the same code as the pool, wherever it was started from)."""
    import gateway

    root = os.path.dirname(os.path.abspath(next(iter(gateway.__path__))))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    return env
