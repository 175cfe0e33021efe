"""The broker as one node of several (issue 18), on both backends: at start it ends only its own
and unowned leftovers; it takes over a node whose lease ran out (sessions ended, audited with the
node ids); a node that was taken over while alive ends the same sessions locally."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, cast

from gateway.broker import NODE_LOST_REASON, RESTART_REASON, BrokerConfig, DwaBroker
from gateway.dwa_policy import decide_dwa_open
from printgate.domain import (
    AgentId,
    DeviceId,
    DwaState,
    DwaTarget,
    Role,
    SessionId,
    UserId,
    event_types,
)
from printgate.domain.dwa import DwaSession
from printgate.domain.tenancy import User
from printgate.store import nodes, sessions
from printgate.store.db import Database
from printgate.testing.audit import RecordingAuditSink
from printgate.testing.portal import create_user
from printgate.testing.tenancy import Tenancy

ADDR = nodes.NodeAddresses("r", "p", "c")


class Undo:
    """Records the local teardown steps (relay, firewall, agent command, route)."""

    def __init__(self) -> None:
        self.ended: list[str] = []

    async def end_session(self, session_id: str, reason: str) -> None:
        self.ended.append(session_id)

    async def revoke(self, rule_id: str) -> None:
        pass

    async def send(self, agent_id: str, command: Any, *, ttl_s: int) -> str:
        return "cmd"

    def remove(self, session_id: str, reason: str) -> None:
        pass


def _broker(db: Database, node_id: str, audit: RecordingAuditSink, undo: Undo) -> DwaBroker:
    unused = cast(Any, None)
    return DwaBroker(BrokerConfig(reap_interval_s=3600), db=db, audit=audit, decide=decide_dwa_open,
                     firewall=cast(Any, undo), relay=cast(Any, undo), commands=cast(Any, undo), proxy=unused,
                     routes=cast(Any, undo), make_open_command=unused, make_close_command=lambda sid, why: None,
                     make_route=unused, node_id=node_id)


async def _setup(db: Database) -> User:
    t = Tenancy().chain(dealer="d1", customer="c1", site="s1", agent="a1", online=True)
    t.device("dev1", "s1", "a1", "127.0.20.1")
    await t.save(db)
    user, _ = await create_user(db, Role.TECHNICIAN, dealer="d1")
    return user


async def _live(db: Database, sid: str, user: User, owner: str | None) -> DwaSession:
    now = datetime.now(UTC)
    session = DwaSession(SessionId(sid), UserId(user.id), DeviceId("dev1"), AgentId("a1"),
                         DwaTarget("127.0.20.1", 80), now, now + timedelta(minutes=20))
    for state in (DwaState.AUTHORISED, DwaState.TUNNEL_OPEN, DwaState.ACTIVE):
        session = session.transition(state, at=now, reason="test")
    async with db.transaction() as s:
        await sessions.save_session(s, session, node_id=owner)
    return session


async def _state(db: Database, sid: str) -> DwaState:
    async with db.session() as s:
        found = await sessions.load_session(s, sid)
    assert found is not None
    return found.state


async def test_start_ends_only_this_nodes_and_unowned_leftovers(db: Database) -> None:
    user = await _setup(db)
    for sid, owner in (("mine", "n2"), ("theirs", "n1"), ("old", None)):
        await _live(db, sid, user, owner)
    audit = RecordingAuditSink()
    async with _broker(db, "n2", audit, Undo()):
        pass
    assert await _state(db, "theirs") is DwaState.ACTIVE
    assert await _state(db, "mine") is DwaState.CLOSED and await _state(db, "old") is DwaState.CLOSED
    closed = {e.session_id: e.details for e in audit.of(event_types.DWA_SESSION_CLOSED)}
    assert closed["mine"]["owner_node"] == "n2" and closed["mine"]["reason"] == RESTART_REASON
    assert closed["old"]["owner_node"] is None and "theirs" not in closed


async def test_start_leaves_a_session_opened_for_this_node_since_its_process_began(db: Database) -> None:
    """Between the node's registration and the broker's start another node may open a session
    this node owns (the agent's stream is here): it is this process's, not a leftover (a parallel
    test run ended one as "gateway restarted")."""
    user = await _setup(db)
    await _live(db, "before", user, "n2")  # a previous process's
    broker = _broker(db, "n2", RecordingAuditSink(), Undo())  # this process begins
    await _live(db, "since", user, "n2")
    async with broker:
        pass
    assert await _state(db, "before") is DwaState.CLOSED
    assert await _state(db, "since") is DwaState.ACTIVE


async def test_an_expired_node_is_taken_over_and_the_node_itself_ends_its_sessions_too(db: Database) -> None:
    user = await _setup(db)
    session = await _live(db, "s1", user, "n1")
    past = datetime.now(UTC) - timedelta(seconds=30)
    async with db.transaction() as s:  # n1's lease ran out 20 s ago
        await nodes.register(s, "n1", host="h", pid=1, incarnation="i1", addresses=ADDR,
                             lease=timedelta(seconds=10), now=past)
    n1_audit, n1_undo = RecordingAuditSink(), Undo()
    n1 = _broker(db, "n1", n1_audit, n1_undo)  # n1 alive after all, holding the session in memory
    n1._live[session.id] = (session, user, "127.0.0.1")
    audit = RecordingAuditSink()
    n2 = _broker(db, "n2", audit, Undo())
    assert await n2.take_over_expired_nodes() == ["n1"]
    assert await n2.take_over_expired_nodes() == []  # once
    assert await _state(db, "s1") is DwaState.CLOSED
    [taken] = audit.of(event_types.GATEWAY_NODE_TAKEN_OVER)
    assert taken.details["node"] == "n1" and taken.details["by_node"] == "n2" and taken.details["sessions_ended"] == 1
    [closed] = audit.of(event_types.DWA_SESSION_CLOSED, "s1")
    assert closed.details["reason"] == NODE_LOST_REASON and closed.details["owner_node"] == "n1"
    assert closed.details["ended_by_node"] == "n2" and closed.details["taken_over"] is True

    assert await n1.end_sessions_ended_elsewhere() == ["s1"]
    assert n1_undo.ended == ["s1"] and n1.live_count == 0  # the relay, route and firewall dropped here too
    assert NODE_LOST_REASON in n1_audit.of(event_types.DWA_SESSION_CLOSED, "s1")[0].details["reason"]  # type: ignore[operator]
    assert await n1.end_sessions_ended_elsewhere() == []
