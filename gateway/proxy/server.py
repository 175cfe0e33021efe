"""DwaProxy: mitmproxy 12 as a library, in the caller's asyncio loop.

One listener serves every session host (``s-<id>.<dwa-domain>``); mitmproxy
runs in reverse mode towards a placeholder and the ``RouteUpstream`` addon
sends each request to its session's tunnel. mitmproxy keeps global state
(``mitmproxy.ctx``): run one DwaProxy per process (one process per core scales it).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from mitmproxy import ctx as mitmproxy_ctx
from mitmproxy import http, options
from mitmproxy.addons import core, next_layer, proxyserver, tlsconfig
from mitmproxy.master import Master

from gateway.attribution import AttributedAudit
from gateway.proxy import early_refusal, error_pages, unix_upstream
from gateway.proxy.addons import default_addons
from gateway.proxy.addons.connection_guard import ConnectionGuard
from gateway.proxy.addons.session_limits import SessionLimits
from gateway.proxy.audit_batch import GroupCommitAudit
from gateway.proxy.budgets import SharedTally
from gateway.proxy.connection_limits import ConnectionLimits
from gateway.proxy.decision import route_of
from gateway.proxy.deps import ExtendRequest, ProxyDeps, PublicAddress, SessionTimeout
from gateway.proxy.fail_closed import Pipeline, fail_closed
from gateway.proxy.limits import ProxyLimits
from gateway.proxy.routes import RouteChange, RouteTable
from gateway.proxy.session_urls import SessionUrls
from printgate.domain import AuditEventIn, Outcome, event_types
from printgate.errors import ConfigError
from printgate.interfaces import AuditSink
from printgate.lifecycle import Service, cancel_and_wait
from printgate.logs import get_logger

log = get_logger(__name__)

# Devices are old: allow old TLS and weak ciphers towards them (never towards the browser).
DEVICE_CIPHERS = "DEFAULT:@SECLEVEL=0"
START_TIMEOUT_S = 10.0


class _ConnectionCloser:
    """Closes live client connections of an ended session (mitmproxy's own timeout path)."""

    def __init__(self, ps: proxyserver.Proxyserver, loop: asyncio.AbstractEventLoop) -> None:
        self._ps = ps
        self._loop = loop

    def close_client(self, client_id: str) -> None:
        # a short delay lets the "session ended" answer of the current request go out first
        self._loop.call_later(0.3, self.close_now, client_id)

    def close_now(self, client_id: str) -> None:
        handler = self._ps.connections.get(client_id)
        if handler is None:
            return
        io = handler.transports.get(handler.client)
        if io is not None and io.handler is not None:
            io.handler.cancel("printgate session ended")

    def _transport(self, client_id: str) -> Any:
        """The client's transport (asyncio's or uvloop's, which is no ``asyncio.ReadTransport``)."""
        handler = self._ps.connections.get(client_id)
        io = handler.transports.get(handler.client) if handler is not None else None
        transport = getattr(io.writer, "transport", None) if io is not None else None
        if transport is None or not hasattr(transport, "pause_reading") or transport.is_closing():
            return None
        return transport

    def pause_reading(self, client_id: str) -> bool:
        """Stop reading from a client (early_refusal.FlowControl); False if not ours."""
        transport = self._transport(client_id)
        if transport is None:
            return False
        transport.pause_reading()
        return True

    def resume_reading(self, client_id: str) -> None:
        transport = self._transport(client_id)
        if transport is not None:
            transport.resume_reading()


class DwaProxy(SessionUrls, Service):
    """The DWA rewriting proxy (one listener for every session host).

    Plain http on ``*.localhost`` is the demo default. For TLS towards the
    technician pass ``public_scheme="https"`` and either ``certs`` in mitmproxy's
    form (``["*.dwa.example.com=/etc/printgate/dwa.pem"]``, cert + key in one PEM)
    or a ``confdir`` holding ``mitmproxy-ca.pem``: the proxy then mints a
    certificate per session host from that CA, which the browser must trust.
    Cookies then become ``__Host-`` cookies with ``Secure``.
    """

    def __init__(
        self,
        listen_host: str,
        listen_port: int,
        *,
        dwa_domain: str,
        routes: RouteTable,
        audit: AuditSink,
        on_end_request: Callable[[str], Awaitable[None]],
        limits: ProxyLimits = ProxyLimits(),
        connection_limits: ConnectionLimits = ConnectionLimits(),
        on_session_timeout: SessionTimeout | None = None,
        on_extend_request: ExtendRequest | None = None,
        public_scheme: str = "http",
        public_port: int | None = None,
        certs: list[str] | None = None,
        confdir: Path | None = None,
        csrf_key: bytes | None = None,
        portal_url: str = "",
        budget_tally: SharedTally | None = None,
        node_label: str | None = None,
    ) -> None:
        if public_scheme not in ("http", "https"):
            raise ConfigError(f"public_scheme must be http or https, got {public_scheme!r}")
        self._listen_host = listen_host
        self._listen_port = listen_port
        self._public_port = public_port
        self._certs = certs or []
        self._confdir = confdir
        self.routes = routes
        # every record of a session carries its dealer, customer, site, device and user
        self._attributed = AttributedAudit(audit)
        for route in routes.live_routes():
            self._attributed.register(route.session_id, route.attribution())
        routes.on_change(self._route_changed)
        self._audit = GroupCommitAudit(self._attributed)
        self.deps = ProxyDeps(
            routes=routes,
            audit=self._audit,
            dwa_domain=dwa_domain.strip(".").lower(),
            on_end_request=on_end_request,
            csrf_key=csrf_key or secrets.token_bytes(32),
            limits=limits,
            public=PublicAddress(public_scheme, public_port or 0),
            on_session_timeout=on_session_timeout,
            on_extend_request=on_extend_request,
            portal_url=portal_url,
            budget_tally=budget_tally,
            node_label=node_label,
        )
        self.public = self.deps.public
        self.dwa_domain = self.deps.dwa_domain
        self.node_label = node_label
        self._master: Master | None = None
        self._run_task: asyncio.Task[None] | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._limits_addon: SessionLimits | None = None
        self.connection_limits = connection_limits
        self._body_caps: dict[str, int] = {}
        self.connections: ConnectionGuard | None = None
        self._guard_task: asyncio.Task[None] | None = None
        self._closer: _ConnectionCloser | None = None
        self._addons: list[object] = []  # the pipeline's addons: their ``done`` at shutdown
        self._previous_ctx: tuple[Any, Any, Any] = (None, None, None)
        self.port = 0

    def _body_cap(self, flow: http.HTTPFlow) -> int:
        """The largest request body any rule allows for this flow's device (vendor profiles included)."""
        route = route_of(flow)
        vendor = route.vendor if route is not None else ""
        cap = self._body_caps.get(vendor)
        if cap is None:
            limits = self.deps.vendor_endpoints.limits_for(vendor, self.deps.limits)
            cap = self._body_caps[vendor] = limits.max_request_body
        return cap

    async def _source_throttled(self, source: str, refused: int) -> None:
        """Audit a source refused at connect for a while (it kept sending refused uploads)."""
        try:
            await self._audit.append(AuditEventIn(
                type=event_types.DWA_SOURCE_THROTTLED, outcome=Outcome.BLOCKED, source_ip=source,
                details={"refused_bodies": refused, "window_s": self.connection_limits.refusal_window_s,
                         "cooldown_s": self.connection_limits.refusal_cooldown_s},
            ))
        except Exception as exc:  # the audit store failing is logged; the throttle holds anyway
            log.error("dwa.audit_failed", error=str(exc), type=event_types.DWA_SOURCE_THROTTLED)

    def _route_changed(self, change: RouteChange) -> None:
        if change.route is not None:
            self._attributed.register(change.session_id, change.route.attribution())

    # --- lifecycle -----------------------------------------------------------
    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        error_pages.install()
        early_refusal.install(self.connection_limits.linger_bytes)
        unix_upstream.install()
        await self._audit.start()
        opts = options.Options()
        # mitmproxy keeps its current master in a module global (new connections are handled by
        # it); a proxy started while another runs (tests) hands it back when it stops
        self._previous_ctx = (getattr(mitmproxy_ctx, "master", None), getattr(mitmproxy_ctx, "options", None),
                              getattr(mitmproxy_ctx, "log", None))
        master = Master(opts, event_loop=loop)
        ps = proxyserver.Proxyserver()
        master.addons.add(core.Core(), ps, next_layer.NextLayer(), tlsconfig.TlsConfig())
        closer = _ConnectionCloser(ps, loop)
        early_refusal.register(closer)
        self._closer = closer
        pipeline = default_addons(self.deps, connection_closer=closer)
        self._limits_addon = next(a for a in pipeline if isinstance(a, SessionLimits))
        self.connections = ConnectionGuard(self.connection_limits, closer, body_cap=self._body_cap,
                                           on_throttle=self._source_throttled)
        # fail closed: an exception in any addon answers the flow with a refusal, never passes it on;
        # one mitmproxy addon dispatches the whole ordered pipeline (fail_closed.Pipeline)
        master.addons.add(Pipeline(fail_closed([*pipeline, self.connections], self._audit)))
        self._addons = [*pipeline, self.connections]
        # placeholder upstream; RouteUpstream picks the real one. Browser-side TLS is
        # detected from the ClientHello (public_scheme="https"), see the class docstring.
        mode = "reverse:http://127.0.0.1:9"
        updates: dict[str, Any] = {
            "mode": [mode],
            "listen_host": self._listen_host,
            "listen_port": self._listen_port,
            "connection_strategy": "lazy",
            "keep_host_header": True,
            "ssl_insecure": True,  # replaced by the fingerprint pin in UpstreamTls
            "tls_version_server_min": "UNBOUNDED",
            "ciphers_server": DEVICE_CIPHERS,
            "body_size_limit": str(self.deps.limits.hard_body_limit),
            "http2": False,
            "http3": False,
            "websocket": True,
            # a 101 that is not a WebSocket never becomes a raw TCP pipe (WebSocketGuard refuses it)
            "rawtcp": False,
            "termlog_verbosity": "error",
        }
        if self._certs:
            updates["certs"] = self._certs
        if self._confdir is not None:
            updates["confdir"] = str(self._confdir)
        opts.update(**{k: v for k, v in updates.items() if k in opts})
        self._master = master
        self._run_task = asyncio.create_task(master.run(), name="mitmproxy-master")
        async with asyncio.timeout(START_TIMEOUT_S):
            while not ps.listen_addrs():
                if self._run_task.done():
                    await self._run_task
                    raise ConfigError(f"proxy could not listen on {self._listen_host}:{self._listen_port}")
                await asyncio.sleep(0.02)
        self.port = int(ps.listen_addrs()[0][1])
        self._small_receive_buffers(ps)
        # mitmproxy's Master.run() installs asyncio's eager task factory on the
        # whole loop. The proxy shares its loop with the SSH relay, and asyncssh
        # stalls in user authentication under eager tasks; keep the loop's
        # ordinary task semantics.
        loop.set_task_factory(None)
        if self._public_port is None:
            self.deps.public.port = self.port
        self._addons_hook("running")
        self._sweeper = asyncio.create_task(self._sweep(), name="dwa-session-sweeper")
        self._guard_task = asyncio.create_task(self._guard_connections(), name="dwa-connection-deadlines")
        log.info("dwa.proxy_started", host=self._listen_host, port=self.port)

    def _small_receive_buffers(self, ps: proxyserver.Proxyserver) -> None:
        """Accepted connections inherit the listening socket's receive buffer: keep it small."""
        size = self.connection_limits.receive_buffer_bytes
        for server in ps.servers:
            for listener in getattr(server, "_servers", []):
                for sock in getattr(listener, "sockets", ()):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)

    async def _sweep(self) -> None:
        assert self._limits_addon is not None
        while True:
            await asyncio.sleep(self.deps.limits.sweep_interval_s)
            try:
                await self._limits_addon.sweep()
            except Exception as exc:  # keep sweeping; operators see the failure
                log.error("dwa.sweep_failed", error=str(exc))

    async def _guard_connections(self) -> None:
        assert self.connections is not None
        while True:
            await asyncio.sleep(self.connection_limits.check_interval_s)
            self.connections.sweep()

    async def aclose(self) -> None:
        await cancel_and_wait(self._sweeper)
        await cancel_and_wait(self._guard_task)
        self._sweeper = self._guard_task = None
        if self._master is not None and self._run_task is not None:
            self._master.shutdown()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(self._run_task, 10)
            if getattr(mitmproxy_ctx, "master", None) is self._master and self._previous_ctx[0] is not None:
                mitmproxy_ctx.master, mitmproxy_ctx.options, mitmproxy_ctx.log = self._previous_ctx
            self._master = None
            self._run_task = None
        self._addons_hook("done")
        self._addons = []
        await self._audit.aclose()
        if self._closer is not None:
            early_refusal.unregister(self._closer)
        log.info("dwa.proxy_stopped", port=self.port)

    def _addons_hook(self, hook: str) -> None:
        """mitmproxy's lifecycle hook ``hook`` (``running``, ``done``) for the pipeline's addons
        (``Pipeline`` passes on flow hooks only): BlockDownloads starts a check worker ahead of the
        first large page at ``running`` and kills its check worker processes at ``done``."""
        for addon in self._addons:
            func = getattr(addon, hook, None)
            if callable(func):
                func()

    async def flush_audit(self) -> None:
        """Wait until every queued audit event of allowed requests is stored."""
        await self._audit.flush()

    @property
    def audit_failing(self) -> bool:
        """The audit writer's last write failed and it has not recovered: requests are refused."""
        return self._audit.failing

