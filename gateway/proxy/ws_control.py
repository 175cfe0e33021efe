"""A WebSocket's control frames and framing carry nothing from one side to the other.

mitmproxy relays Ping and Pong frames, payload and all, from one side to the other without
calling any addon, and passes a Close frame's reason on: 125 bytes a Ping, as many Pings as a
client likes, unchecked and outside every budget (tester xfer2 moved 300 KB of random bytes each
way in Pings). ``install()`` changes that for the process:

- a Ping is answered by the proxy itself, to the side that sent it, with its own payload (as
  RFC 6455 asks of the receiver); nothing reaches the other side;
- a Pong (an answer, or an unsolicited heartbeat) is dropped;
- a Close frame reaches the other side without its reason text, and with its code only when it
  is one of RFC 6455's own (1000-1015; any other becomes 1000: codes 3000-4999 are 11 bits a
  WebSocket of the sender's choosing, tester wsc);
- every data message is sent on as one frame: mitmproxy kept the sender's fragment lengths,
  and 256 fragments of spaces carried 256 bytes of a file in their lengths (tester wsc).

Each side still learns that the proxy is alive, which is what a heartbeat is for; browsers send
no Pings at all (page scripts cannot). The payload bytes a side sent this way are counted in the
flow's metadata (``CONTROL_BYTES_KEY``) for the WebSocket's audit record.

A frame that breaks the protocol (a reserved bit, an unknown opcode, invalid UTF-8 in a text
frame) is wsproto's own verdict, not a Close the peer sent: the frame is dropped and the
WebSocket closed (1002, 1007). Which side sent it, the code and wsproto's text are kept in
``PROTOCOL_ERROR_KEY`` for the refusal's audit record (``addons.websocket_bound``); a peer that
closes with one of those codes itself is not a refusal.
"""

from __future__ import annotations

import functools
from collections.abc import Generator
from typing import Any

import wsproto.events
from mitmproxy.proxy.layers.websocket import Fragmentizer, WebsocketConnection, WebsocketLayer
from wsproto.connection import ConnectionState

CONTROL_BYTES_KEY = "printgate.ws_control_bytes"  # flow metadata: {"browser": n, "device": n}
PROTOCOL_ERROR_KEY = "printgate.ws_protocol_error"  # flow metadata: {"side": ..., "code": n, "reason": ...}
STANDARD_CLOSE_CODES = range(1000, 1016)
LOCAL_ERROR_CODES = frozenset({1002, 1007})  # wsproto's own verdict on a broken frame: its reason is its text
_PENDING = "_printgate_pongs"  # on a WebsocketConnection: the Pongs the proxy owes that side


def install() -> None:
    original_events = WebsocketConnection.events
    if getattr(original_events, "_printgate_control", False):
        return

    @functools.wraps(original_events)
    def events(self: WebsocketConnection) -> Generator[wsproto.events.Event, None, None]:
        for event in original_events(self):
            if isinstance(event, wsproto.events.Ping):
                self.__dict__.setdefault(_PENDING, []).append(event.response())
                _count(self, len(event.payload))
                continue
            if isinstance(event, wsproto.events.Pong):
                _count(self, len(event.payload))
                continue
            if isinstance(event, wsproto.events.CloseConnection):
                if self.state in (ConnectionState.OPEN, ConnectionState.LOCAL_CLOSING):
                    _protocol_error(self, event)  # a peer's Close frame would have moved the state on
                elif event.reason and event.code not in LOCAL_ERROR_CODES:
                    _count(self, len(event.reason.encode()))
                code = event.code if event.code in STANDARD_CLOSE_CODES else 1000
                event = wsproto.events.CloseConnection(code=code, reason=None)
            yield event

    original_relay = WebsocketLayer.relay_messages

    @functools.wraps(original_relay)
    def relay_messages(self: WebsocketLayer, event: Any) -> Generator[Any, Any, None]:
        for ws in (self.client_ws, self.server_ws):
            ws.__dict__["_printgate_flow"] = self.flow
        yield from original_relay(self, event)
        for ws in (self.client_ws, self.server_ws):
            pongs = ws.__dict__.pop(_PENDING, [])
            if ws.state is ConnectionState.OPEN:
                for pong in pongs:
                    yield ws.send2(pong)

    def one_frame(self: Fragmentizer, content: bytes) -> Generator[wsproto.events.Message, None, None]:
        yield self.msg(content, True)

    events._printgate_control = True  # type: ignore[attr-defined]
    WebsocketConnection.events = events  # type: ignore[method-assign, assignment]
    WebsocketLayer.relay_messages = relay_messages  # type: ignore[method-assign]
    Fragmentizer.__call__ = one_frame  # type: ignore[method-assign]


def _side(ws: WebsocketConnection, flow: Any) -> str:
    return "browser" if ws.conn is flow.client_conn else "device"


def _protocol_error(ws: WebsocketConnection, event: wsproto.events.CloseConnection) -> None:
    flow = ws.__dict__.get("_printgate_flow")
    if flow is not None:
        flow.metadata.setdefault(PROTOCOL_ERROR_KEY, {
            "side": _side(ws, flow), "code": event.code, "reason": str(event.reason or "protocol error")[:200]})


def _count(ws: WebsocketConnection, size: int) -> None:
    flow = ws.__dict__.get("_printgate_flow")
    if flow is None or size == 0:
        return
    side = _side(ws, flow)
    counts = flow.metadata.setdefault(CONTROL_BYTES_KEY, {"browser": 0, "device": 0})
    counts[side] += size
