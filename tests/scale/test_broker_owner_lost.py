"""Issue 18 finding 12 (PostgreSQL): the node holding the agent's stream dies during a cross-node open.
The asking node fails the session as soon as the owner's lease is seen expired, or as soon as a
take-over ended the session, not at the 20 s timeout; exactly one dwa.session.failed is written."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest

from gateway.broker import BrokerConfig, DwaBroker
from gateway.dwa_policy import decide_dwa_open
from gateway.node_commands import NodeCommandBus
from printgate.domain import DeviceId, DwaState, event_types
from printgate.interfaces import SessionRefused
from printgate.store import nodes, sessions
from printgate.store.db import Database
from printgate.testing.audit import RecordingAuditSink
from printgate.testing.database import migrated
from tests.scale.test_broker_nodes import ADDR, Undo, _setup

pytestmark = pytest.mark.postgres
TIMEOUT_S = 20.0


def _broker(db: Database, node_id: str, audit: RecordingAuditSink) -> DwaBroker:
    unused, undo = cast(Any, None), cast(Any, Undo())
    return DwaBroker(BrokerConfig(reap_interval_s=3600, node_command_timeout_s=TIMEOUT_S), db=db, audit=audit,
                     decide=decide_dwa_open, firewall=undo, relay=undo, commands=undo, proxy=unused, routes=undo,
                     make_open_command=unused, make_close_command=lambda sid, why: None, make_route=unused,
                     node_id=node_id)


@pytest.mark.parametrize("taken_over", [False, True], ids=["lease-seen-expired", "taken-over"])
async def test_the_asking_node_fails_the_open_promptly_when_the_owner_dies(pg_database: str, taken_over: bool) -> None:
    async with migrated(pg_database) as db, Database(pg_database) as db2:
        user = await _setup(db)
        now = datetime.now(UTC)
        async with db.transaction() as s:
            await nodes.register(s, "node-2", host="h", pid=1, incarnation="i2", addresses=ADDR,
                                 lease=timedelta(minutes=1), now=now)
            # node 1 holds the agent's stream and is killed right after: nobody answers its commands
            await nodes.register(s, "node-1", host="h", pid=1, incarnation="i1", addresses=ADDR,
                                 lease=timedelta(seconds=2), now=now)
            await nodes.stream_opened(s, "a1", "node-1", now)
        audit2, audit3 = RecordingAuditSink(), RecordingAuditSink()
        two, three = _broker(db2, "node-2", audit2), _broker(db, "node-3", audit3)
        async with NodeCommandBus(db2, "node-2", audit=audit2) as bus2:
            two.use_nodes(bus2)

            async def take_over_when_expired() -> None:
                await asyncio.sleep(2.2)
                assert await three.take_over_expired_nodes() == ["node-1"]

            taker = asyncio.create_task(take_over_when_expired()) if taken_over else None
            started = time.monotonic()
            result = await two.open_session(user, DeviceId("dev1"), source_ip="127.0.0.1", mfa_age_seconds=1.0)
            took = time.monotonic() - started
            if taker is not None:
                await taker
        assert isinstance(result, SessionRefused) and "node-1" in result.message
        assert took < 6.0 < TIMEOUT_S  # lease 2 s + one check a second, not the 20 s timeout
        failed = audit2.of(event_types.DWA_SESSION_FAILED) + audit3.of(event_types.DWA_SESSION_FAILED)
        assert len(failed) == 1 and failed[0].session_id is not None
        assert failed[0].details.get("owner_node") == "node-1"
        if "ended_by_node" in failed[0].details:  # the taker ended it first (else node 2 saw the lease run out)
            assert failed[0].details["ended_by_node"] == "node-3" and failed[0].details["state_before"] == "authorised"
        async with db.session() as s:
            stored = await sessions.load_session(s, failed[0].session_id)
        assert stored is not None and stored.state is DwaState.FAILED


async def test_a_take_over_fails_an_open_its_owner_never_finished(pg_database: str) -> None:
    """An authorised session whose owner died before setting it up was never open: the taker records
    it failed (dwa.session.failed, as docs/scale-out.md promises), not closed."""
    from printgate.domain import AgentId, DwaTarget, SessionId, UserId
    from printgate.domain.dwa import DwaSession

    async with migrated(pg_database) as db:
        user = await _setup(db)
        now = datetime.now(UTC)
        session = DwaSession(SessionId("half-open"), UserId(user.id), DeviceId("dev1"), AgentId("a1"),
                             DwaTarget("127.0.20.1", 80), now, now + timedelta(minutes=20))
        async with db.transaction() as s:
            await nodes.register(s, "node-1", host="h", pid=1, incarnation="i1", addresses=ADDR,
                                 lease=timedelta(seconds=-1), now=now)
            await sessions.save_session(s, session.transition(DwaState.AUTHORISED, at=now, reason="ok"),
                                        node_id="node-1")
        audit = RecordingAuditSink()
        assert await _broker(db, "node-3", audit).take_over_expired_nodes() == ["node-1"]
        (failed,) = audit.of(event_types.DWA_SESSION_FAILED, "half-open")
        assert failed.details["state_before"] == "authorised" and failed.details["taken_over"] is True
        assert not audit.of(event_types.DWA_SESSION_CLOSED, "half-open")
