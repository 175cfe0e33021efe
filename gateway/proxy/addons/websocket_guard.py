"""WebSockets carry status updates, not files: binary or large messages are dropped."""

from __future__ import annotations

from mitmproxy import http

from gateway.proxy.decision import route_of
from gateway.proxy.limits import ProxyLimits
from printgate.logs import get_logger

log = get_logger(__name__)

DROPPED_KEY = "printgate.ws_dropped"


class WebSocketGuard:
    def __init__(self, limits: ProxyLimits) -> None:
        self._limits = limits

    def websocket_message(self, flow: http.HTTPFlow) -> None:
        if flow.websocket is None or not flow.websocket.messages:
            return
        message = flow.websocket.messages[-1]
        if message.is_text and len(message.content) <= self._limits.max_ws_message:
            return
        message.drop()
        flow.metadata[DROPPED_KEY] = int(flow.metadata.get(DROPPED_KEY, 0)) + 1
        route = route_of(flow)
        log.info(
            "dwa.websocket_message_dropped",
            session=route.session_id if route else None,
            binary=not message.is_text,
            size=len(message.content),
        )
