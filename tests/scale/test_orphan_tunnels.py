"""Issue 18 finding 4 (PostgreSQL, brokers of three nodes with their node command buses): an agent whose
owning node was killed reconnects to another node before the take-over. The node it connects to tells
it to drop the tunnels of sessions that are over (ended, or owned by a dead node) while their credential
is still valid; and the node taking the dead one over tells the agent through the node now holding its
stream, so it stops retrying those tunnels at once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest

from gateway.broker import BrokerConfig, DwaBroker
from gateway.dwa_policy import decide_dwa_open
from gateway.node_commands import NodeCommandBus
from printgate.domain import AgentId, DeviceId, DwaState, DwaTarget, SessionId, UserId
from printgate.domain.dwa import DwaSession
from printgate.store import nodes, sessions
from printgate.store.db import Database
from printgate.testing.audit import RecordingAuditSink
from printgate.testing.database import migrated
from tests.scale.test_broker_nodes import ADDR, Undo, _setup

pytestmark = pytest.mark.postgres


class Agent(Undo):
    """The agent side of the broker's commands: which sessions it was told to close."""

    def __init__(self) -> None:
        super().__init__()
        self.closed: list[str] = []

    async def send(self, agent_id: str, command: Any, *, ttl_s: int) -> str:
        self.closed.append(str(command))
        return "cmd"


def _broker(db: Database, node_id: str, agent: Agent) -> DwaBroker:
    unused, undo = cast(Any, None), cast(Any, agent)
    return DwaBroker(BrokerConfig(reap_interval_s=3600), db=db, audit=RecordingAuditSink(), decide=decide_dwa_open,
                     firewall=undo, relay=undo, commands=undo, proxy=unused, routes=undo, make_open_command=unused,
                     make_close_command=lambda sid, why: sid, make_route=unused, node_id=node_id)


async def _session(db: Database, sid: str, user_id: str, owner: str, *, state: DwaState = DwaState.ACTIVE,
                   expires_in: timedelta = timedelta(minutes=20)) -> None:
    now = datetime.now(UTC)
    session = DwaSession(SessionId(sid), UserId(user_id), DeviceId("dev1"), AgentId("a1"),
                         DwaTarget("127.0.20.1", 80), now - timedelta(minutes=1), now + expires_in)
    for step in (DwaState.AUTHORISED, DwaState.TUNNEL_OPEN, DwaState.ACTIVE):
        session = session.transition(step, at=now, reason="test")
    if state is not DwaState.ACTIVE:
        session = session.transition(state, at=now, reason="ended")
    async with db.transaction() as s:
        await sessions.save_session(s, session, node_id=owner)


async def _nodes(db: Database, **leases: float) -> None:
    now = datetime.now(UTC)
    async with db.transaction() as s:
        for node_id, lease_s in leases.items():
            await nodes.register(s, node_id.replace("_", "-"), host="h", pid=1, incarnation=node_id,
                                 addresses=ADDR, lease=timedelta(seconds=lease_s), now=now)


async def test_the_node_an_agent_reconnects_to_tells_it_to_drop_tunnels_of_sessions_that_are_over(
        pg_database: str) -> None:
    async with migrated(pg_database) as db:
        user = await _setup(db)
        await _nodes(db, node_1=-1, node_2=60)  # node 1 killed: its lease ran out, nobody took it over yet
        await _session(db, "of-dead-node", user.id, "node-1")
        await _session(db, "ended", user.id, "node-2", state=DwaState.CLOSED)
        await _session(db, "ended-long-ago", user.id, "node-2", state=DwaState.CLOSED, expires_in=timedelta(minutes=-5))
        await _session(db, "live-here", user.id, "node-2")
        agent = Agent()
        two = _broker(db, "node-2", agent)
        async with NodeCommandBus(db, "node-2") as bus:
            two.use_nodes(bus)
            assert await two.drop_orphans("a1") == 2
        assert sorted(agent.closed) == ["ended", "of-dead-node"]


async def test_the_taker_tells_the_agent_through_the_node_holding_its_stream_now(pg_database: str) -> None:
    async with migrated(pg_database) as db, Database(pg_database) as db3:
        user = await _setup(db)
        await _nodes(db, node_1=-1, node_2=60, node_3=60)
        await _session(db, "s-of-node-1", user.id, "node-1")
        async with db.transaction() as s:
            await nodes.stream_opened(s, "a1", "node-3", datetime.now(UTC))  # it reconnected to node 3
        on_node_3 = Agent()
        two, three = _broker(db, "node-2", Agent()), _broker(db3, "node-3", on_node_3)
        async with NodeCommandBus(db, "node-2") as bus2, NodeCommandBus(db3, "node-3") as bus3:
            two.use_nodes(bus2)
            three.use_nodes(bus3)
            assert await two.take_over_expired_nodes() == ["node-1"]
        assert on_node_3.closed == ["s-of-node-1"]
