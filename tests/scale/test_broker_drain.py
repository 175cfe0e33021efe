"""Draining a node (SIGTERM, rolling upgrade; issue 18) on both backends: a draining broker refuses
new sessions with a clear message (audited), leaves its sessions alone when their agent goes to
another node, ends the sessions still live when the grace period runs out ("gateway maintenance")
and audits the drain; sessions that end on their own within the grace are not ended again."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from gateway.broker import DRAIN_REASON, DRAINING_REFUSAL
from printgate.domain import DeviceId, DwaState, event_types
from printgate.interfaces import SessionRefused
from printgate.store.db import Database
from printgate.testing.audit import RecordingAuditSink
from tests.scale.test_broker_nodes import Undo, _broker, _live, _setup, _state


async def test_a_draining_node_refuses_new_sessions_and_ends_the_rest_after_the_grace(db: Database) -> None:
    user = await _setup(db)
    audit, undo = RecordingAuditSink(), Undo()
    broker = _broker(db, "n1", audit, undo)
    for sid in ("s1", "s2"):
        session = await _live(db, sid, user, "n1")
        broker._live[session.id] = (session, user, "127.0.0.1")

    ends_at = await broker.start_draining(0.6)
    assert broker.draining and ends_at <= datetime.now(UTC) + timedelta(seconds=0.6)
    refused = await broker.open_session(user, DeviceId("dev1"), source_ip="127.0.0.1", mfa_age_seconds=1.0)
    assert isinstance(refused, SessionRefused) and refused.message == DRAINING_REFUSAL
    assert [r.code for r in refused.decision.reasons] == ["gateway.draining"]
    decisions = [e for e in audit.events if e.type == event_types.POLICY_DECISION]
    assert decisions and decisions[-1].details["allow"] is False

    await broker.agent_lost("a1")  # the agent went to another node: its tunnels here stay up
    assert await _state(db, "s1") is DwaState.ACTIVE
    await broker.close_session(broker._live["s2"][0].id, reason="ended by the technician", actor="technician")

    began = time.monotonic()
    assert await broker.finish_draining() == 1
    assert time.monotonic() - began >= 0.3  # waited for the grace, not at once
    assert await _state(db, "s1") is DwaState.CLOSED and undo.ended == ["s2", "s1"]
    closes = {e.session_id: e.details["reason"] for e in audit.events if e.type == event_types.DWA_SESSION_CLOSED}
    assert closes == {"s1": DRAIN_REASON, "s2": "ended by the technician"}
    draining = [e for e in audit.events if e.type == event_types.GATEWAY_NODE_DRAINING]
    drained = [e for e in audit.events if e.type == event_types.GATEWAY_NODE_DRAINED]
    assert len(draining) == 1 and draining[0].details["live_sessions"] == 2 and draining[0].details["node"] == "n1"
    assert len(drained) == 1 and drained[0].details == {
        "node": "n1", "sessions_at_start": 2, "ended_on_their_own": 1, "ended_by_drain": 1}


async def test_a_drain_with_no_live_session_does_not_wait(db: Database) -> None:
    await _setup(db)
    audit = RecordingAuditSink()
    broker = _broker(db, "n1", audit, Undo())
    await broker.start_draining(30)
    began = time.monotonic()
    assert await broker.finish_draining() == 0
    assert time.monotonic() - began < 1
