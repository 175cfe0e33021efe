"""A WebSocket closed for a message past its bound (``gateway.proxy.ws_bound``) is audited.

Constructing the addon installs the bound on mitmproxy's WebSocket layer (once per
process). When the layer closed a WebSocket because a message in progress grew
past the bound, the flow carries ``OVERSIZE_KEY`` and this addon stores a
``dwa.transfer_blocked`` record (``websocket.message_too_large``) next to the
connection's ordinary ``dwa.websocket`` record.

A WebSocket the proxy closed for a frame that broke the protocol (1002: a reserved
bit set, e.g. a compressed frame when no compression was negotiated, a bad opcode,
a fragmented control frame; 1007: invalid UTF-8 in a text frame or a Close reason)
dropped that frame without passing it on: that refusal is stored as
``dwa.transfer_blocked`` (``websocket.protocol_error``) too (issue 21 F6; the 1007
case, tester wsc). ``ws_control`` tells such a verdict from a peer closing with the
same code of its own accord, which is no refusal.

At ``websocket_start`` the flow's message list is made to keep only its latest message
(``gateway.proxy.ws_messages``): mitmproxy kept every message of a live WebSocket, and an open
WebSocket grew the proxy without bound (tester wsx F1).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mitmproxy import http

from gateway.proxy import ws_bound, ws_control, ws_messages
from gateway.proxy.decision import route_of
from printgate.domain import AuditEventIn, Outcome, event_types
from printgate.interfaces import AuditSink
from printgate.logs import get_logger

if TYPE_CHECKING:
    from gateway.proxy.routes import SessionRoute

log = get_logger(__name__)
RULE = "websocket.message_too_large"
PROTOCOL_RULE = "websocket.protocol_error"


class WebSocketBound:
    def __init__(self, audit: AuditSink | None, cap: int = ws_bound.DEFAULT_CAP) -> None:
        self._audit = audit
        ws_bound.install(cap)

    def websocket_start(self, flow: http.HTTPFlow) -> None:
        if flow.websocket is not None:
            ws_messages.keep_no_history(flow.websocket)

    async def websocket_end(self, flow: http.HTTPFlow) -> None:
        oversize = flow.metadata.get(ws_bound.OVERSIZE_KEY)
        if not isinstance(oversize, dict):
            broken = flow.metadata.get(ws_control.PROTOCOL_ERROR_KEY)
            if isinstance(broken, dict):
                await self._protocol_error(flow, broken)
            return
        side = str(oversize.get("from", ""))
        size = int(oversize.get("bytes", 0))
        route = route_of(flow)
        log.info("dwa.websocket_closed_too_big", session=route.session_id if route else None, side=side, size=size)
        await self._blocked(
            flow, route, side, RULE,
            f"A WebSocket message from the {side} grew past {size} bytes: the WebSocket was closed (1009).",
            "websocket message", size,
        )

    async def _protocol_error(self, flow: http.HTTPFlow, broken: dict[str, object]) -> None:
        side, code, why = str(broken.get("side")), broken.get("code"), str(broken.get("reason"))
        route = route_of(flow)
        log.info("dwa.websocket_protocol_error", session=route.session_id if route else None, side=side,
                 code=code, reason=why)
        await self._blocked(
            flow, route, side, PROTOCOL_RULE,
            f"A WebSocket frame from the {side} broke the protocol ({why}): it was dropped, "
            f"not passed on, and the WebSocket was closed ({code}).",
            "websocket frame", 0,
        )

    async def _blocked(
        self, flow: http.HTTPFlow, route: SessionRoute | None, side: str, rule: str, reason: str,
        transfer_type: str, size: int,
    ) -> None:
        """Store the ``dwa.transfer_blocked`` record of a WebSocket the proxy closed."""
        if self._audit is None:
            return
        peer = flow.client_conn.peername
        await self._audit.append(AuditEventIn(
            type=event_types.DWA_TRANSFER_BLOCKED, outcome=Outcome.BLOCKED,
            session_id=route.session_id if route else None, source_ip=str(peer[0]) if peer else None,
            details={
                "method": flow.request.method, "path": flow.request.path.split("?", 1)[0], "blocked": True,
                "rule": rule, "reason": reason,
                "direction": "request" if side == "browser" else "response",
                "transfer_type": transfer_type, "transfer_size": size, "where": "websocket",
            },
        ))
