"""A WebSocket message is never buffered past a bound.

mitmproxy joins a message's frames in memory (``WebsocketConnection.frame_buf``)
until the message ends, however long it grows: a page script or a hostile device
could send one endless message (one frame declaring 2**63 bytes, or fragments
without end) and the proxy would keep all of it before any addon sees it.
``install(cap)`` changes that for the process: once a message in progress holds
more than ``cap`` bytes, both sides get close code 1009 ("message too big"), the
connections are closed and what was buffered is dropped. The flow records why
(``OVERSIZE_KEY``) for the audit addon, which stores it as
``dwa.transfer_blocked`` (``websocket.message_too_large``). No message that
large could pass the WebSocket guard anyway (device frames are capped at
``max_ws_message``, browser frames by the request budget).
"""

from __future__ import annotations

import functools
from collections.abc import Generator
from typing import Any

import wsproto.events
from mitmproxy.proxy import commands
from mitmproxy.proxy.layers.websocket import WebsocketEndHook, WebsocketLayer
from wsproto.connection import ConnectionState

OVERSIZE_KEY = "printgate.ws_oversize"  # flow metadata: {"from": "browser"|"device", "bytes": n}
CLOSE_TOO_BIG = 1009
DEFAULT_CAP = 1024 * 1024

_cap = DEFAULT_CAP


def install(cap: int = DEFAULT_CAP) -> None:
    global _cap
    _cap = cap
    original = WebsocketLayer.relay_messages
    if getattr(original, "_printgate_bounded", False):
        return

    @functools.wraps(original)
    def relay_messages(self: WebsocketLayer, event: Any) -> Generator[Any, Any, None]:
        yield from original(self, event)
        if self.flow.websocket is None or self._handle_event != self.relay_messages:
            return
        for side, ws in (("browser", self.client_ws), ("device", self.server_ws)):
            buffered = sum(len(part) for part in ws.frame_buf)
            if buffered > _cap:
                yield from _close_too_big(self, side, buffered)
                return

    relay_messages._printgate_bounded = True  # type: ignore[attr-defined]
    WebsocketLayer.relay_messages = relay_messages  # type: ignore[method-assign]


def _close_too_big(layer: WebsocketLayer, side: str, buffered: int) -> Generator[Any, Any, None]:
    flow = layer.flow
    assert flow.websocket is not None
    flow.metadata[OVERSIZE_KEY] = {"from": side, "bytes": buffered}
    for ws in (layer.client_ws, layer.server_ws):
        ws.frame_buf = [b""]
        if ws.state in {ConnectionState.OPEN, ConnectionState.REMOTE_CLOSING}:
            yield ws.send2(wsproto.events.CloseConnection(code=CLOSE_TOO_BIG, reason="message too big"))
        yield commands.CloseConnection(ws.conn)
    flow.websocket.close_code = CLOSE_TOO_BIG
    flow.websocket.close_reason = "message too big"
    flow.websocket.closed_by_client = False
    yield WebsocketEndHook(flow)
    flow.live = False
    layer._handle_event = layer.done
