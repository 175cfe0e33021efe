"""The broker's cross-node paths without a real agent (PostgreSQL): an open decided on node 2 for an
agent whose stream node 1 holds is refused with node 1's reason when node 1 refuses before any
set-up (it is draining), and the session is failed and audited on node 2 (not left authorised)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gateway.node_commands import NodeCommandBus
from printgate.domain import DeviceId, DwaState, event_types
from printgate.interfaces import SessionRefused
from printgate.store import nodes, sessions
from printgate.store.db import Database
from printgate.testing.audit import RecordingAuditSink
from printgate.testing.database import migrated
from tests.scale.test_broker_nodes import ADDR, Undo, _broker, _setup

pytestmark = pytest.mark.postgres


async def test_an_owner_that_refuses_before_set_up_fails_the_session_on_the_asking_node(pg_database: str) -> None:
    async with migrated(pg_database) as db, Database(pg_database) as db2:
        user = await _setup(db)
        now = datetime.now(UTC)
        async with db.transaction() as s:
            for node in ("node-1", "node-2"):
                await nodes.register(s, node, host="h", pid=1, incarnation=node, addresses=ADDR,
                                     lease=timedelta(minutes=1), now=now)
            await nodes.stream_opened(s, "a1", "node-1", now)
        audit1, audit2 = RecordingAuditSink(), RecordingAuditSink()
        one, two = _broker(db, "node-1", audit1, Undo()), _broker(db2, "node-2", audit2, Undo())
        async with NodeCommandBus(db, "node-1", audit=audit1) as bus1, \
                NodeCommandBus(db2, "node-2", audit=audit2) as bus2:
            one.use_nodes(bus1)
            two.use_nodes(bus2)
            await one.start_draining(60)
            result = await two.open_session(user, DeviceId("dev1"), source_ip="127.0.0.1", mfa_age_seconds=1.0)
        assert isinstance(result, SessionRefused)
        assert "gateway node node-1 is draining" in result.message
        (failed,) = audit2.of(event_types.DWA_SESSION_FAILED)
        assert failed.details["owner_node"] == "node-1" and failed.details["node"] == "node-2"
        assert failed.session_id is not None
        async with db.session() as s:
            stored = await sessions.load_session(s, failed.session_id)
            assert await sessions.owner_of(s, failed.session_id) == "node-1"
        assert stored is not None and stored.state is DwaState.FAILED
        (delegated,) = audit2.of(event_types.DWA_SESSION_DELEGATED)
        assert delegated.details["outcome"] == "failed" and delegated.details["step"] == "prepare"
