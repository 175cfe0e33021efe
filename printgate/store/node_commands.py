"""Commands between gateway nodes (issue 18, docs/scale-out.md "Cross-node commands").

A command is a ``node_commands`` row; the target node is woken by ``NOTIFY`` on its channel
(``channel_of``), sent in the transaction that inserts the row, so the row and the notification
appear together or not at all. A lost notification costs latency only: the target re-reads its
pending rows when it listens again and on every lease renewal. Exactly one execution: ``claim``
moves rows ``pending`` → ``claimed`` in one conditional ``UPDATE … RETURNING`` (PostgreSQL: the
candidate rows locked ``FOR UPDATE SKIP LOCKED``), so two claimers racing never get the same row.
Results come back the same way (``finish``: the row, then one ``NOTIFY`` per requesting node).
SQLite (one node): the rows work, nobody is notified; the bus delivers locally instead.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from printgate.store.models.nodes import NodeCommandRow

PENDING = "pending"
CLAIMED = "claimed"
DONE = "done"
FAILED = "failed"
EXPIRED = "expired"
FINISHED = (DONE, FAILED, EXPIRED)
CHANNEL_PREFIX = "printgate_node_"
_SAFE = re.compile(r"[^a-z0-9_]")


def channel_of(node_id: str) -> str:
    """The ``LISTEN`` channel of ``node_id``: ``printgate_node_<id>`` (lower case, other characters
    as ``_``; a long or altered id gets a hash suffix so two ids never share a channel, and the
    name stays under PostgreSQL's 63-byte identifier limit)."""
    safe = _SAFE.sub("_", node_id.lower())
    if safe == node_id and len(safe) <= 40:
        return CHANNEL_PREFIX + safe
    return f"{CHANNEL_PREFIX}{safe[:24]}_{hashlib.sha256(node_id.encode()).hexdigest()[:12]}"


@dataclass(frozen=True, slots=True)
class NewCommand:
    id: str
    target_node: str
    from_node: str
    kind: str
    payload: dict[str, Any]
    deadline: datetime
    agent_id: str | None = None
    batch_id: str | None = None


@dataclass(frozen=True, slots=True)
class NodeCommand:
    id: str
    batch_id: str | None
    target_node: str
    from_node: str
    kind: str
    agent_id: str | None
    payload: dict[str, Any]
    state: str
    created_at: datetime
    deadline: datetime
    result: dict[str, Any] | None
    error: str | None


def _command(row: NodeCommandRow) -> NodeCommand:
    return NodeCommand(id=row.id, batch_id=row.batch_id, target_node=row.target_node, from_node=row.from_node,
                       kind=row.kind, agent_id=row.agent_id, payload=json.loads(row.payload), state=row.state,
                       created_at=row.created_at, deadline=row.deadline,
                       result=json.loads(row.result) if row.result is not None else None, error=row.error)


_COLUMNS = [NodeCommandRow.__table__.c[name] for name in (
    "id", "batch_id", "target_node", "from_node", "kind", "agent_id", "payload", "state", "created_at", "deadline",
    "result", "error")]
_OUTCOME = [NodeCommandRow.__table__.c[name] for name in ("id", "batch_id", "state", "result", "error")]


def _command_of(r: Any) -> NodeCommand:
    """From a core row of ``_COLUMNS`` (no ORM identity map: thousands of rows per batch)."""
    return NodeCommand(id=r.id, batch_id=r.batch_id, target_node=r.target_node, from_node=r.from_node, kind=r.kind,
                       agent_id=r.agent_id, payload=json.loads(r.payload), state=r.state, created_at=r.created_at,
                       deadline=r.deadline, result=json.loads(r.result) if r.result is not None else None,
                       error=r.error)


@dataclass(frozen=True, slots=True)
class Finished:
    """The outcome of a command, as its requester reads it."""

    id: str
    batch_id: str | None
    state: str
    result: dict[str, Any] | None
    error: str | None


def _finished_of(r: Any) -> Finished:
    return Finished(id=r.id, batch_id=r.batch_id, state=r.state,
                    result=json.loads(r.result) if r.result is not None else None, error=r.error)


async def notify(s: AsyncSession, node_id: str, payload: str) -> None:
    """``NOTIFY`` ``node_id``'s channel when the caller's transaction commits (PostgreSQL only)."""
    if s.get_bind().dialect.name == "postgresql":
        await s.execute(text("SELECT pg_notify(:channel, :payload)"),
                        {"channel": channel_of(node_id), "payload": payload[:7900]})


async def enqueue(s: AsyncSession, commands: Sequence[NewCommand], now: datetime) -> None:
    """Insert ``commands`` and wake each target node once: ``c:<id>`` for a single command,
    ``b:<batch id>`` for a batch (one notification per node however many agents it holds)."""
    for i in range(0, len(commands), 1000):
        await s.execute(insert(NodeCommandRow), [
            {"id": c.id, "batch_id": c.batch_id, "target_node": c.target_node, "from_node": c.from_node,
             "kind": c.kind, "agent_id": c.agent_id, "payload": json.dumps(c.payload, separators=(",", ":")),
             "state": PENDING, "created_at": now, "deadline": c.deadline}
            for c in commands[i:i + 1000]])
    woken: dict[str, str] = {}
    for c in commands:
        woken.setdefault(c.target_node, f"b:{c.batch_id}" if c.batch_id else f"c:{c.id}")
    for node, payload in woken.items():
        await notify(s, node, payload)


async def claim(s: AsyncSession, node_id: str, now: datetime, *, limit: int = 5000) -> list[NodeCommand]:
    """The pending commands for ``node_id``, now ``claimed`` by this transaction (exactly once);
    pending ones past their deadline are marked ``expired`` instead (nobody waits for them)."""
    await s.execute(update(NodeCommandRow)
                    .where(NodeCommandRow.target_node == node_id, NodeCommandRow.state == PENDING,
                           NodeCommandRow.deadline <= now)
                    .values(state=EXPIRED, finished_at=now, error="not claimed before its deadline"))
    candidates = (select(NodeCommandRow.id)
                  .where(NodeCommandRow.target_node == node_id, NodeCommandRow.state == PENDING)
                  .order_by(NodeCommandRow.created_at).limit(limit)
                  .with_for_update(skip_locked=True))
    rows = (await s.execute(
        update(NodeCommandRow)
        .where(NodeCommandRow.id.in_(candidates.scalar_subquery()), NodeCommandRow.state == PENDING)
        .values(state=CLAIMED, claimed_at=now)
        .returning(*_COLUMNS)
        .execution_options(synchronize_session=False))).all()
    return sorted((_command_of(r) for r in rows), key=lambda c: c.created_at)


@dataclass(frozen=True, slots=True)
class Outcome:
    id: str
    from_node: str
    ok: bool
    result: dict[str, Any] | None = None
    error: str | None = None
    batch_id: str | None = None


async def finish(s: AsyncSession, outcomes: Iterable[Outcome], now: datetime) -> None:
    """Store the outcomes of claimed commands and wake each requesting node once per batch
    (``b:<batch id>``) or command (``r:<id>``)."""
    woken: set[tuple[str, str]] = set()
    rows = []
    for o in outcomes:  # the claimer alone writes a claimed row: one executemany by primary key
        rows.append({"id": o.id, "state": DONE if o.ok else FAILED, "finished_at": now, "error": o.error,
                     "result": json.dumps(o.result, separators=(",", ":")) if o.result is not None else None})
        woken.add((o.from_node, f"b:{o.batch_id}" if o.batch_id else f"r:{o.id}"))
    for i in range(0, len(rows), 1000):
        await s.execute(update(NodeCommandRow), rows[i:i + 1000])
    for node, payload in sorted(woken):
        await notify(s, node, payload)


async def expire(s: AsyncSession, command_ids: Sequence[str], now: datetime) -> list[str]:
    """The requester stopped waiting: commands not claimed yet never run (``expired``); the ids
    that were expired here (the others were claimed already)."""
    rows = (await s.scalars(update(NodeCommandRow)
                            .where(NodeCommandRow.id.in_(list(command_ids)), NodeCommandRow.state == PENDING)
                            .values(state=EXPIRED, finished_at=now, error="the requesting node stopped waiting")
                            .returning(NodeCommandRow.id)
                            .execution_options(synchronize_session=False))).all()
    return list(rows)


async def finished(s: AsyncSession, command_ids: Sequence[str]) -> list[Finished]:
    """Those of ``command_ids`` that have an outcome."""
    found: list[Finished] = []
    for i in range(0, len(command_ids), 1000):
        found += [_finished_of(r) for r in (await s.execute(
            select(*_OUTCOME).where(NodeCommandRow.id.in_(list(command_ids[i:i + 1000])),
                                    NodeCommandRow.state.in_(FINISHED)))).all()]
    return found


async def finished_of_batch(s: AsyncSession, batch_id: str, *, from_node: str) -> list[Finished]:
    """The outcomes of ``batch_id`` so far (one indexed query however many agents)."""
    return [_finished_of(r) for r in (await s.execute(
        select(*_OUTCOME).where(NodeCommandRow.batch_id == batch_id, NodeCommandRow.from_node == from_node,
                                NodeCommandRow.state.in_(FINISHED)))).all()]


async def get(s: AsyncSession, command_id: str) -> NodeCommand | None:
    row = await s.get(NodeCommandRow, command_id)
    return _command(row) if row is not None else None


async def counts(s: AsyncSession) -> dict[str, int]:
    """Rows per state (for tests and metrics)."""
    return {state: n for state, n in (await s.execute(
        select(NodeCommandRow.state, func.count()).group_by(NodeCommandRow.state))).all()}


async def purge(s: AsyncSession, before: datetime) -> int:
    """Forget finished commands created before ``before`` (run on lease renewals)."""
    result = await s.execute(delete(NodeCommandRow).where(NodeCommandRow.state.in_(FINISHED),
                                                          NodeCommandRow.created_at < before))
    return int(getattr(result, "rowcount", 0) or 0)
