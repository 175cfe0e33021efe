"""Session limits: maximum duration, activity-aware idle timeout, live connections closed at teardown."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from typing import Protocol

from mitmproxy import connection, http

from gateway.proxy import pages
from gateway.proxy.decision import already_answered, route_of
from gateway.proxy.deps import ProxyDeps
from gateway.proxy.routes import RouteTable, SessionRoute
from printgate.logs import get_logger

log = get_logger(__name__)


def expiry_reason(routes: RouteTable, route: SessionRoute) -> str | None:
    """Why ``route`` is over its limits now (maximum duration, idle time), or None."""
    now = routes.now()
    if now >= route.expires_at:
        return "the maximum session duration was reached"
    last = routes.last_activity(route.session_id)
    if last is not None and now - last > timedelta(seconds=route.idle_timeout_s):
        return "the session was idle for too long"
    return None


class ConnectionCloser(Protocol):
    def close_client(self, client_id: str) -> None: ...


class SessionLimits:
    def __init__(self, deps: ProxyDeps, closer: object | None = None) -> None:
        self._deps = deps
        self._closer = closer
        self._clients: dict[str, set[str]] = defaultdict(set)  # session -> client conn ids
        deps.routes.on_remove(self._session_removed)

    def expiry_reason(self, route: SessionRoute) -> str | None:
        return expiry_reason(self._deps.routes, route)

    async def end_if_over(self, route: SessionRoute) -> str | None:
        reason = self.expiry_reason(route)
        if reason is None:
            return None
        self._deps.routes.remove(route.session_id, reason)
        log.info("dwa.session_timeout", session=route.session_id, reason=reason)
        if self._deps.on_session_timeout is not None:
            await self._deps.on_session_timeout(route.session_id, reason)
        return reason

    async def sweep(self) -> None:
        """End every live session that is over its limits (called periodically by the proxy)."""
        for route in self._deps.routes.live_routes():
            await self.end_if_over(route)

    async def request(self, flow: http.HTTPFlow) -> None:
        if already_answered(flow):
            return
        route = route_of(flow)
        if route is None:
            return
        reason = await self.end_if_over(route)
        if reason is not None:
            pages.session_ended(flow, reason)
            return
        self._deps.routes.touch(route.session_id)
        self._clients[route.session_id].add(flow.client_conn.id)

    async def websocket_message(self, flow: http.HTTPFlow) -> None:
        route = route_of(flow)
        if route is not None and self._deps.routes.get(route.session_id) is not None:
            self._deps.routes.touch(route.session_id)

    def client_disconnected(self, client: connection.Client) -> None:
        for ids in self._clients.values():
            ids.discard(client.id)

    def _session_removed(self, session_id: str, reason: str) -> None:
        ids = self._clients.pop(session_id, set())
        closer = self._closer
        if closer is None:
            return
        for client_id in ids:
            closer.close_client(client_id)  # type: ignore[attr-defined]
        if ids:
            log.info("dwa.connections_closed", session=session_id, count=len(ids), reason=reason)
