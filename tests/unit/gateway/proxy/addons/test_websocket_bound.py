"""WebSocketBound alone: a WebSocket the layer closed for an oversized message is audited; others are not."""

from gateway.proxy import ws_bound
from gateway.proxy.addons.websocket_bound import RULE, WebSocketBound
from printgate.testing.audit import RecordingAuditSink
from tests.unit.gateway.proxy.addons.flows import flow, route


async def test_an_oversized_message_is_audited_as_blocked_and_an_ordinary_end_is_not() -> None:
    sink = RecordingAuditSink()
    addon = WebSocketBound(sink)
    ordinary = flow(path="/ws", with_route=route(session_id="w1"))
    await addon.websocket_end(ordinary)
    assert sink.events == []
    closed = flow(path="/ws", with_route=route(session_id="w1"))
    closed.metadata[ws_bound.OVERSIZE_KEY] = {"from": "browser", "bytes": 1_048_600}
    await addon.websocket_end(closed)
    [event] = sink.events
    assert event.type == "dwa.transfer_blocked" and event.session_id == "w1"
    assert event.details["rule"] == RULE and event.details["transfer_size"] == 1_048_600
    assert event.details["direction"] == "request"
