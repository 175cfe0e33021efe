"""SessionLimits alone: an expired session ends at its next request (callback told, connections closed)."""

from datetime import UTC, datetime, timedelta

from gateway.proxy.addons.session_limits import SessionLimits
from tests.unit.gateway.proxy.addons.flows import deps, flow, route


class Closer:
    def __init__(self) -> None:
        self.closed: list[str] = []

    def close_client(self, client_id: str) -> None:
        self.closed.append(client_id)


async def test_a_live_session_is_served_and_its_activity_noted() -> None:
    d = deps()
    live = route(session_id="live")
    d.routes.add(live)
    f = flow(with_route=live)
    await SessionLimits(d).request(f)
    assert f.response is None and d.routes.last_activity("live") is not None


async def test_an_expired_session_ends_at_its_next_request() -> None:
    ended: list[tuple[str, str]] = []

    async def on_timeout(session_id: str, reason: str) -> None:
        ended.append((session_id, reason))

    d, closer = deps(on_session_timeout=on_timeout), Closer()
    limits = SessionLimits(d, closer)
    old = route(session_id="old", expires_at=datetime.now(UTC) + timedelta(minutes=5))
    d.routes.add(old)
    first = flow(with_route=old)
    await limits.request(first)  # served: its client connection is remembered
    expired = route(session_id="old", expires_at=datetime.now(UTC) - timedelta(seconds=1))
    d.routes.add(expired)
    f = flow(with_route=expired)
    await limits.request(f)
    assert f.response is not None and [sid for sid, _ in ended] == ["old"]
    assert d.routes.get("old") is None
    assert first.client_conn.id in closer.closed
