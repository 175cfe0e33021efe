"""A draining node's live sessions (issue 18): the banner counts down to the drain's end and says
"gateway maintenance", on every proxy worker (the route change is replicated like any other)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gateway.proxy.addons.banner import banner_html
from gateway.proxy.control_channel import route_from_json, route_to_json
from gateway.proxy.routes import RouteChange, RouteTable
from tests.unit.gateway.proxy.addons.flows import route


def test_the_banner_says_when_a_draining_node_ends_the_session() -> None:
    table = RouteTable()
    changes: list[RouteChange] = []
    table.on_change(changes.append)
    now = datetime(2026, 12, 5, 23, 40, tzinfo=UTC)
    table.add(route(session_id="abc", expires_at=now + timedelta(minutes=20)))
    table.note_maintenance("abc", now + timedelta(minutes=1))
    live = table.get("abc")
    assert live is not None and live.expires_at == now + timedelta(minutes=20)  # the drain ends it, not the proxy
    html = banner_html(live, "csrf", now.timestamp())
    assert "this session ends at 23:41 UTC: gateway maintenance" in html
    assert f"data-expires={int((now + timedelta(minutes=1)).timestamp())}" in html
    assert changes[-1].route is not None and route_from_json(route_to_json(changes[-1].route)) == live
    late = banner_html(route(expires_at=now + timedelta(minutes=5), maintenance_at="00:40",
                             maintenance_epoch=int((now + timedelta(hours=1)).timestamp())), "csrf", now.timestamp())
    assert f"data-expires={int((now + timedelta(minutes=5)).timestamp())}" in late  # its own end comes first
    table.note_maintenance("gone", now)  # a session that ended meanwhile: nothing


def test_no_maintenance_no_note() -> None:
    assert "gateway maintenance" not in banner_html(route(), "csrf", datetime.now(UTC).timestamp())
