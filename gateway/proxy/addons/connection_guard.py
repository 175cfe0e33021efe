"""Connections, not sessions: a cap per source address and header, idle and request timeouts.

None of these need a session: they hold for every connection, so an attacker
without a session cookie cannot keep hundreds of connections open
(slowloris) or trickle a body forever. WebSocket connections are left to
mitmproxy's own inactivity timeout (``tcp_timeout``) once upgraded. A source
that keeps sending bodies the proxy refuses on their headers (uploads without
a session) is refused at connect for a while, so it cannot keep the proxy busy
answering it; that is logged and audited once per cool-down.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from mitmproxy import connection, http

from gateway.proxy.connection_limits import ConnectionLimits
from gateway.proxy.early_refusal import BODY_CAP_KEY, EARLY_KEY
from printgate.logs import get_logger

log = get_logger(__name__)


class Closer(Protocol):
    def close_now(self, client_id: str) -> None: ...


@dataclass(slots=True)
class _Conn:
    source: str
    since: float  # start of the current wait (for headers, or for the answer)
    limit_s: float  # how long that wait may last
    what: str  # "headers" | "idle" | "request" | "websocket"


class ConnectionGuard:
    def __init__(self, limits: ConnectionLimits, closer: Closer,
                 clock: Callable[[], float] = time.monotonic,
                 body_cap: Callable[[http.HTTPFlow], int | None] = lambda _flow: None,
                 on_throttle: Callable[[str, int], Awaitable[None]] | None = None) -> None:
        self._limits = limits
        self._closer = closer
        self._body_cap = body_cap
        self._on_throttle = on_throttle
        self._refused: dict[str, deque[float]] = {}  # source -> times of bodies refused unread
        self._throttled: dict[str, float] = {}  # source -> refused at connect until
        self.throttled = 0  # connections refused because their source is cooling down
        self._clock = clock
        self._conns: dict[str, _Conn] = {}
        self._per_source: Counter[str] = Counter()
        self.refused = 0  # connections refused over the per-source cap
        self.timed_out = 0  # connections closed by a deadline

    @property
    def open_connections(self) -> int:
        return len(self._conns)

    def client_connected(self, client: connection.Client) -> None:
        source = str(client.peername[0]) if client.peername else ""
        until = self._throttled.get(source)
        if until is not None and self._clock() < until:
            self.throttled += 1
            client.error = "this address sent too many refused uploads; try again later"
            return
        if self._per_source[source] >= self._limits.max_connections_per_source:
            self.refused += 1
            client.error = "too many connections from this address"
            log.warning("dwa.connection_refused", source=source, open=self._per_source[source])
            return
        self._per_source[source] += 1
        self._conns[client.id] = _Conn(source, self._clock(), self._limits.header_timeout_s, "headers")

    def client_disconnected(self, client: connection.Client) -> None:
        conn = self._conns.pop(client.id, None)
        if conn is not None:
            self._per_source[conn.source] -= 1
            if self._per_source[conn.source] <= 0:
                del self._per_source[conn.source]

    def _wait(self, flow: http.HTTPFlow, limit_s: float, what: str) -> None:
        conn = self._conns.get(flow.client_conn.id)
        if conn is not None:
            conn.since, conn.limit_s, conn.what = self._clock(), limit_s, what

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        self._wait(flow, self._limits.request_timeout_s, "request")
        if flow.response is not None:  # answered on its headers: no "100 Continue" invites the body
            flow.request.headers.pop("expect", None)
            return
        cap = self._body_cap(flow)  # a body growing past every allowed size is not buffered on
        if cap is not None:
            flow.metadata[BODY_CAP_KEY] = cap

    def response(self, flow: http.HTTPFlow) -> Awaitable[None] | None:
        if flow.websocket is not None and flow.response is not None and flow.response.status_code == 101:
            self._wait(flow, float("inf"), "websocket")
            return None
        if flow.metadata.get(EARLY_KEY):  # answered unread: the rest of its body gets little time
            self._wait(flow, self._limits.header_timeout_s, "refused body")
            return self._count_refusal(flow)  # awaited by mitmproxy (a coroutine only here)
        # a slow reader of the answer is cut off here too
        self._wait(flow, self._limits.idle_timeout_s, "idle")
        return None

    def error(self, flow: http.HTTPFlow) -> None:
        self._wait(flow, self._limits.idle_timeout_s, "idle")

    def websocket_end(self, flow: http.HTTPFlow) -> None:
        self._wait(flow, self._limits.idle_timeout_s, "idle")

    async def _count_refusal(self, flow: http.HTTPFlow) -> None:
        conn = self._conns.get(flow.client_conn.id)
        if conn is None:
            return
        limit = self._limits.max_refused_bodies_per_source
        now = self._clock()
        times = self._refused.setdefault(conn.source, deque(maxlen=limit))
        times.append(now)
        if len(times) < limit or now - times[0] > self._limits.refusal_window_s:
            return
        times.clear()
        self._throttled[conn.source] = now + self._limits.refusal_cooldown_s
        log.warning("dwa.source_throttled", source=conn.source, refused=limit,
                    window_s=self._limits.refusal_window_s, cooldown_s=self._limits.refusal_cooldown_s)
        if self._on_throttle is not None:
            await self._on_throttle(conn.source, limit)

    def sweep(self) -> None:
        """Close every connection past its deadline (called periodically)."""
        now = self._clock()
        for source in [s for s, until in self._throttled.items() if until <= now]:
            del self._throttled[source]
        window = self._limits.refusal_window_s
        for source in [s for s, t in self._refused.items() if not t or now - t[-1] > window]:
            del self._refused[source]
        for client_id, conn in list(self._conns.items()):
            if now - conn.since > conn.limit_s:
                self.timed_out += 1
                conn.since, conn.limit_s = now, float("inf")  # closing; do not count twice
                log.info("dwa.connection_timeout", source=conn.source, waiting_for=conn.what)
                self._closer.close_now(client_id)
