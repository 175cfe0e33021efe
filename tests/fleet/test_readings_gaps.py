"""Loss the agent reported is visible: the fleet names a readings gap with its reason ("agent queue
overflow"), the agents page shows each agent's health (degraded, failing tasks, queue, drops)."""

from __future__ import annotations

from contextlib import aclosing
from datetime import timedelta

from gateway.agent_events import health_from_wire
from printgate.domain import Role
from printgate.store.agent_health import record_health
from printgate.wire import agent_pb2 as pb
from tests.fleet.conftest import T0, FleetPortal, signed_in


def _ms(minutes: float) -> int:
    return int((T0 + timedelta(minutes=minutes)).timestamp() * 1000)


async def _report(fp: FleetPortal, agent_id: str, beat: pb.HeartbeatRequest) -> None:
    async with fp.db.transaction() as s:
        await record_health(s, health_from_wire(agent_id, beat, received_at=T0 + timedelta(hours=2)))


async def test_fleet_marks_the_gap_as_agent_queue_overflow(fleet_portal: FleetPortal) -> None:
    beat = pb.HeartbeatRequest(queue_length=9, drops=[
        pb.ReadingsDrop(ip="127.0.20.15", kind="supplies", reason="agent queue overflow", count=40,
                        first_at_ms=_ms(0), last_at_ms=_ms(50)),
    ])
    await _report(fleet_portal, "a-c1", beat)
    beat.drops[0].count = 35  # a late heartbeat with an older total never lowers the count
    await _report(fleet_portal, "a-c1", beat)
    client, _ = await signed_in(fleet_portal, Role.VIEWER)
    async with aclosing(client):
        m130 = await client.get("/fleet/dev-m130")
        canon = await client.get("/fleet/dev-canon")
    assert m130.status_code == 200
    assert 'id="readings-gaps"' in m130.text
    assert "40 supplies readings not received between 2025-03-01 08:00 and 2025-03-01 08:50" in m130.text
    assert "agent queue overflow" in m130.text
    assert 'id="readings-gaps"' not in canon.text  # another device of the same agent lost nothing


async def test_agents_page_shows_degraded_agent_with_its_failing_task(fleet_portal: FleetPortal) -> None:
    await _report(fleet_portal, "a-c1", pb.HeartbeatRequest(
        queue_length=1234, oldest_queued_ms=_ms(-30), degraded="disk full: new readings are not stored",
        tasks=[pb.TaskHealth(name="heartbeat", state="running"),
               pb.TaskHealth(name="readings-upload", state="backoff", restarts=3,
                             last_error="OSError: [Errno 28] No space left on device", last_error_at_ms=_ms(1))],
        drops=[pb.ReadingsDrop(ip="127.0.20.12", kind="alerts", reason="agent disk full", count=7,
                               first_at_ms=_ms(0), last_at_ms=_ms(5))],
    ))
    client, _ = await signed_in(fleet_portal, Role.DEALER_ADMIN)
    async with aclosing(client):
        page = await client.get("/agents")
    assert page.status_code == 200
    row = page.text[page.text.index('data-agent-id="a-c1"'):]
    row = row[:row.index("</tr>")]
    assert "degraded" in row and "disk full: new readings are not stored" in row
    assert "queue 1234" in row and "dropped 7" in row
    assert "readings-upload: backoff, restarts 3" in row and "No space left on device" in row
    assert "7 alerts readings of 127.0.20.12: agent disk full" in row
    other = page.text[page.text.index('data-agent-id="a-c2"'):]
    assert "no report yet" in other[:other.index("</tr>")]
