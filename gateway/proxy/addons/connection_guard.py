"""Connections, not sessions: a cap per source address and header, idle and request timeouts.

None of these need a session: they hold for every connection, so an attacker
without a session cookie cannot keep hundreds of connections open
(slowloris) or trickle a body forever. WebSocket connections are left to
mitmproxy's own inactivity timeout (``tcp_timeout``) once upgraded.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
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
                 body_cap: Callable[[http.HTTPFlow], int | None] = lambda _flow: None) -> None:
        self._limits = limits
        self._closer = closer
        self._body_cap = body_cap
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

    def response(self, flow: http.HTTPFlow) -> None:
        if flow.websocket is not None and flow.response is not None and flow.response.status_code == 101:
            self._wait(flow, float("inf"), "websocket")
            return
        if flow.metadata.get(EARLY_KEY):  # answered unread: the rest of its body gets little time
            self._wait(flow, self._limits.header_timeout_s, "refused body")
            return
        # a slow reader of the answer is cut off here too
        self._wait(flow, self._limits.idle_timeout_s, "idle")

    def error(self, flow: http.HTTPFlow) -> None:
        self._wait(flow, self._limits.idle_timeout_s, "idle")

    def websocket_end(self, flow: http.HTTPFlow) -> None:
        self._wait(flow, self._limits.idle_timeout_s, "idle")

    def sweep(self) -> None:
        """Close every connection past its deadline (called periodically)."""
        now = self._clock()
        for client_id, conn in list(self._conns.items()):
            if now - conn.since > conn.limit_s:
                self.timed_out += 1
                conn.since, conn.limit_s = now, float("inf")  # closing; do not count twice
                log.info("dwa.connection_timeout", source=conn.source, waiting_for=conn.what)
                self._closer.close_now(client_id)
