"""WebSocketGuard alone: binary frames are dropped and audited, small text status frames pass."""

from mitmproxy.test import tflow
from mitmproxy.websocket import WebSocketMessage
from wsproto.frame_protocol import Opcode

from gateway.proxy.addons.websocket_guard import DROPPED_KEY, WebSocketGuard
from gateway.proxy.decision import ROUTE_KEY
from gateway.proxy.limits import ProxyLimits
from printgate.testing.audit import RecordingAuditSink
from tests.unit.gateway.proxy.addons.flows import route


def _ws_flow(content: bytes, *, text: bool, from_client: bool):  # type: ignore[no-untyped-def]
    f = tflow.twebsocketflow(messages=False)
    assert f.websocket is not None
    f.websocket.messages.append(WebSocketMessage(Opcode.TEXT if text else Opcode.BINARY, from_client, content))
    f.metadata[ROUTE_KEY] = route(session_id="ws1")
    return f


async def test_a_binary_frame_is_dropped_and_audited() -> None:
    audit = RecordingAuditSink()
    f = _ws_flow(b"\x00\x01PK\x03\x04", text=False, from_client=True)
    await WebSocketGuard(ProxyLimits(), audit=audit).websocket_message(f)
    assert f.websocket is not None and f.websocket.messages[-1].dropped
    assert f.metadata[DROPPED_KEY] == 1
    assert audit.of("dwa.transfer_blocked", "ws1")


async def test_a_small_text_status_frame_passes() -> None:
    audit = RecordingAuditSink()
    f = _ws_flow(b'{"toner": 42}', text=True, from_client=False)
    await WebSocketGuard(ProxyLimits(), audit=audit).websocket_message(f)
    assert f.websocket is not None and not f.websocket.messages[-1].dropped
    assert audit.events == []
