"""The node registry (issue 18, docs/scale-out.md): gateway nodes with leases and the node
holding each agent's command stream. SQLite: one node, the same code path with one row.

Taking over an expired node is ``claim_expired`` inside the caller's transaction: on PostgreSQL
the expired rows are locked ``FOR UPDATE SKIP LOCKED`` and marked ``expired`` before commit, so
two nodes never both take over the same node (the second skips the locked row, then sees it
expired); SQLite serialises writers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Select, delete, exists, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from printgate.errors import NodeStillLive
from printgate.store.models.core import AgentRow
from printgate.store.models.nodes import AgentStreamRow, GatewayNodeRow

ACTIVE = "active"
DRAINING = "draining"
STOPPED = "stopped"
EXPIRED = "expired"
LEASED = (ACTIVE, DRAINING)  # states that hold a lease


@dataclass(frozen=True, slots=True)
class NodeAddresses:
    relay: str
    proxy: str
    channel: str


@dataclass(frozen=True, slots=True)
class Node:
    id: str
    state: str
    host: str
    pid: int
    incarnation: str
    addresses: NodeAddresses
    started_at: datetime
    renewed_at: datetime
    lease_expires_at: datetime
    stopped_at: datetime | None
    taken_over_by: str | None
    key_ids: dict[str, str] | None = None  # key use -> id of the keys the node uses (None: not recorded)

    def is_live(self, now: datetime) -> bool:
        return self.state in LEASED and self.lease_expires_at > now


def _node(row: GatewayNodeRow) -> Node:
    return Node(id=row.id, state=row.state, host=row.host, pid=row.pid, incarnation=row.incarnation,
                addresses=NodeAddresses(row.relay_address, row.proxy_address, row.channel_address),
                started_at=row.started_at, renewed_at=row.renewed_at, lease_expires_at=row.lease_expires_at,
                stopped_at=row.stopped_at, taken_over_by=row.taken_over_by, key_ids=_key_ids(row.key_ids))


def _key_ids(raw: str | None) -> dict[str, str] | None:
    import json

    try:
        found = json.loads(raw) if raw else None
    except ValueError:
        return None
    return {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else None


async def get_node(s: AsyncSession, node_id: str) -> Node | None:
    row = await s.get(GatewayNodeRow, node_id)
    return _node(row) if row is not None else None


async def list_nodes(s: AsyncSession) -> list[Node]:
    return [_node(r) for r in (await s.scalars(select(GatewayNodeRow).order_by(GatewayNodeRow.id))).all()]


async def register(s: AsyncSession, node_id: str, *, host: str, pid: int, incarnation: str,
                   addresses: NodeAddresses, lease: timedelta, now: datetime,
                   key_ids: dict[str, str] | None = None) -> None:
    """Insert or take back the row of ``node_id`` as ``active`` with a fresh lease."""
    row = await s.get(GatewayNodeRow, node_id, with_for_update=True)
    if row is None:
        row = GatewayNodeRow(id=node_id)
        s.add(row)
    row.state, row.host, row.pid, row.incarnation = ACTIVE, host, pid, incarnation
    row.relay_address, row.proxy_address, row.channel_address = addresses.relay, addresses.proxy, addresses.channel
    row.started_at = row.renewed_at = now
    row.lease_expires_at = now + lease
    row.stopped_at = None
    row.taken_over_by = None
    if key_ids is not None:
        import json

        row.key_ids = json.dumps(key_ids, sort_keys=True)


async def record_key_ids(s: AsyncSession, node_id: str, *, incarnation: str, key_ids: dict[str, str]) -> None:
    """The node's key ids now (after a rotation in the shared key directory)."""
    import json

    await s.execute(update(GatewayNodeRow).where(GatewayNodeRow.id == node_id, GatewayNodeRow.incarnation == incarnation)
                    .values(key_ids=json.dumps(key_ids, sort_keys=True)))


def differing_keys(mine: dict[str, str], others: Sequence[Node], now: datetime) -> dict[str, dict[str, str]]:
    """Live other nodes whose recorded key ids differ from ``mine``: node id -> {use: their id}."""
    found: dict[str, dict[str, str]] = {}
    for node in others:
        if node.key_ids is None or not node.is_live(now):
            continue
        diff = {use: theirs for use, theirs in node.key_ids.items() if use in mine and mine[use] != theirs}
        if diff:
            found[node.id] = diff
    return found


async def renew(s: AsyncSession, node_id: str, *, incarnation: str, lease: timedelta, now: datetime) -> bool:
    """Extend this process's lease; False when the row is no longer ours (taken over after the
    lease ran out, or another process registered under the same id)."""
    result = await s.execute(
        update(GatewayNodeRow)
        .where(GatewayNodeRow.id == node_id, GatewayNodeRow.incarnation == incarnation,
               GatewayNodeRow.state.in_(LEASED))
        .values(renewed_at=now, lease_expires_at=now + lease))
    return bool(getattr(result, "rowcount", 0))


async def set_state(s: AsyncSession, node_id: str, state: str, *, incarnation: str, now: datetime) -> bool:
    """``draining`` (keeps the lease) or ``stopped`` (ends it, drops the node's agent streams)."""
    values: dict[str, object] = {"state": state}
    if state == STOPPED:
        values |= {"stopped_at": now, "lease_expires_at": now}
    result = await s.execute(
        update(GatewayNodeRow)
        .where(GatewayNodeRow.id == node_id, GatewayNodeRow.incarnation == incarnation,
               GatewayNodeRow.state.in_(LEASED))
        .values(**values))
    if state == STOPPED:
        await s.execute(delete(AgentStreamRow).where(AgentStreamRow.node_id == node_id))
    return bool(getattr(result, "rowcount", 0))


async def claim_expired(s: AsyncSession, *, by: str, now: datetime) -> list[Node]:
    """Nodes whose lease ran out while active or draining, now marked ``expired`` and
    ``taken_over_by`` ``by`` (in the caller's transaction: end their sessions in it too); their
    agent streams are dropped. Rows another transaction holds are skipped."""
    rows = (await s.scalars(
        select(GatewayNodeRow)
        .where(GatewayNodeRow.state.in_(LEASED), GatewayNodeRow.lease_expires_at <= now, GatewayNodeRow.id != by)
        .order_by(GatewayNodeRow.id)
        .with_for_update(skip_locked=True))).all()
    claimed = [_node(r) for r in rows]
    for row in rows:
        row.state, row.taken_over_by = EXPIRED, by
    if rows:
        await s.execute(delete(AgentStreamRow).where(AgentStreamRow.node_id.in_([r.id for r in rows])))
    return claimed


async def forget(s: AsyncSession, node_id: str, *, now: datetime) -> Node | None:
    """Delete the row of ``node_id`` if it is not live (stopped, expired, or its lease ran out);
    returns the row as it was, None when there is none. ``NodeStillLive`` for a live node."""
    row = await s.get(GatewayNodeRow, node_id, with_for_update=True)
    if row is None:
        return None
    node = _node(row)
    if node.is_live(now):
        raise NodeStillLive(node.id, node.state, node.lease_expires_at.isoformat(timespec="seconds"))
    await s.execute(delete(AgentStreamRow).where(AgentStreamRow.node_id == node_id))
    await s.delete(row)
    return node


# ---- agent command streams ------------------------------------------------------------------

async def stream_opened(s: AsyncSession, agent_id: str, node_id: str, now: datetime) -> None:
    """``node_id`` holds ``agent_id``'s command stream now (the agent's newest connection wins)."""
    await streams_opened(s, [agent_id], node_id, now)


async def streams_opened(s: AsyncSession, agent_ids: Sequence[str], node_id: str, now: datetime) -> None:
    """Many at once: one ``INSERT … ON CONFLICT (agent_id) DO UPDATE`` per 1,000 agents, so a
    presence event and a renewal's reconcile racing for the same agent never collide."""
    await _upsert_streams(s, agent_ids, node_id, now)


async def _upsert_streams(s: AsyncSession, agent_ids: Sequence[str], node_id: str, now: datetime,
                          where: ColumnElement[bool] | None = None) -> None:
    """``node_id`` holds the streams of ``agent_ids`` since ``now``: one ``INSERT … ON CONFLICT DO
    UPDATE`` per 1,000 agents; ``where`` limits which existing rows are taken over."""
    insert = pg_insert if s.get_bind().dialect.name == "postgresql" else sqlite_insert
    for i in range(0, len(agent_ids), 1000):
        rows = [{"agent_id": a, "node_id": node_id, "since": now} for a in agent_ids[i:i + 1000]]
        stmt = insert(AgentStreamRow).values(rows)
        await s.execute(stmt.on_conflict_do_update(
            index_elements=[AgentStreamRow.agent_id],
            set_={"node_id": stmt.excluded.node_id, "since": stmt.excluded.since}, where=where))


def _live_node_ids(now: datetime) -> Select[str]:
    return select(GatewayNodeRow.id).where(GatewayNodeRow.state.in_(LEASED), GatewayNodeRow.lease_expires_at > now)


async def stream_taken(s: AsyncSession, agent_id: str, node_id: str, now: datetime) -> str | None:
    """A new stream of ``agent_id`` opened on ``node_id`` (the newest connection wins, as on one node):
    record it, and return the other LIVE node that held the agent's stream until now (it must cut
    that stream: two connections with one certificate), or None. The row is locked while read."""
    prior = (await s.execute(
        select(AgentStreamRow.node_id).where(AgentStreamRow.agent_id == agent_id).with_for_update())).scalar()
    await streams_opened(s, [agent_id], node_id, now)
    if prior is None or prior == node_id:
        return None
    live = (await s.execute(_live_node_ids(now).where(GatewayNodeRow.id == prior))).scalar()
    return prior if live is not None else None


async def streams_claimed(s: AsyncSession, agent_ids: Sequence[str], node_id: str, now: datetime) -> set[str]:
    """A renewal's reconcile: record ``node_id`` as the holder of those of ``agent_ids`` no other live
    node holds (a newer holder is never overwritten: no flip-flop between two nodes each holding a
    stream of the agent); returns the agents another live node holds (their stream here is the older
    one and is cut)."""
    await _upsert_streams(s, agent_ids, node_id, now, where=AgentStreamRow.node_id.not_in(_live_node_ids(now)))
    found = await stream_nodes(s, agent_ids)
    return {a for a, n in found.items() if n != node_id}


async def agent_offline(s: AsyncSession, agent_id: str, node_id: str | None, at: datetime) -> bool:
    """The agent's stream on ``node_id`` ended: mark it offline, in one conditional statement, unless
    another live node holds its stream now (it reconnected there: it stays online). ``node_id`` None
    (one node, no registry): unconditionally. True when marked offline."""
    stmt = update(AgentRow).where(AgentRow.id == agent_id)
    if node_id is not None:
        stmt = stmt.where(~exists().where(AgentStreamRow.agent_id == agent_id, AgentStreamRow.node_id != node_id,
                                          AgentStreamRow.node_id.in_(_live_node_ids(at))))
    result = await s.execute(stmt.values(online=False, last_seen=at))
    return bool(getattr(result, "rowcount", 0))


async def stream_closed(s: AsyncSession, agent_id: str, node_id: str) -> None:
    """The stream on ``node_id`` ended (a newer one on another node is left alone)."""
    await streams_closed(s, [agent_id], node_id)


async def streams_closed(s: AsyncSession, agent_ids: Sequence[str], node_id: str) -> None:
    for i in range(0, len(agent_ids), 1000):
        await s.execute(delete(AgentStreamRow).where(AgentStreamRow.agent_id.in_(list(agent_ids[i:i + 1000])),
                                                     AgentStreamRow.node_id == node_id))


async def streams_of(s: AsyncSession, node_id: str) -> set[str]:
    return set((await s.scalars(select(AgentStreamRow.agent_id).where(AgentStreamRow.node_id == node_id))).all())


async def stream_node(s: AsyncSession, agent_id: str) -> str | None:
    """The node holding ``agent_id``'s command stream, if any (where a later step routes commands)."""
    row = await s.get(AgentStreamRow, agent_id)
    return row.node_id if row is not None else None


async def stream_nodes(s: AsyncSession, agent_ids: Sequence[str]) -> dict[str, str]:
    """agent id → the node holding its command stream, for those of ``agent_ids`` online anywhere."""
    found: dict[str, str] = {}
    for i in range(0, len(agent_ids), 1000):
        found |= dict((await s.execute(select(AgentStreamRow.agent_id, AgentStreamRow.node_id)
                                       .where(AgentStreamRow.agent_id.in_(list(agent_ids[i:i + 1000]))))).tuples().all())
    return found


async def lock_session(s: AsyncSession, session_id: str) -> None:
    """Lock a session's row for the rest of the caller's transaction (PostgreSQL ``FOR UPDATE``): a
    node failing a cross-node open and a node taking the owner over never both end it (the second
    reads it ended). SQLite serialises writers."""
    from printgate.store.models.core import DwaSessionRow

    await s.execute(select(DwaSessionRow.id).where(DwaSessionRow.id == session_id).with_for_update())


async def stale_tunnels_of(s: AsyncSession, agent_id: str, now: datetime) -> list[str]:
    """Sessions of ``agent_id`` whose tunnel the agent may still keep or retry (their credential has
    not expired) though they are over: ended, or owned by a registered node that is no longer live
    (killed: its taker ends them). Any node the agent connects to tells it to drop them (issue 18)."""
    from sqlalchemy import or_

    from printgate.store.models.core import DwaSessionRow

    dead_nodes = select(GatewayNodeRow.id).where(~GatewayNodeRow.id.in_(_live_node_ids(now)))
    rows = await s.scalars(
        select(DwaSessionRow.id)
        .where(DwaSessionRow.agent_id == agent_id, DwaSessionRow.expires_at > now,
               or_(DwaSessionRow.state.in_(("closed", "failed")), DwaSessionRow.node_id.in_(dead_nodes)))
        .order_by(DwaSessionRow.id).limit(1000))
    return list(rows.all())
