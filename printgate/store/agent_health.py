"""Agent health as the cloud keeps it: the latest heartbeat report, and readings drops per device.

An agent's drop counts are totals since its queue was made, so each heartbeat
replaces them (a repeated or late heartbeat never counts a loss twice; a count
never goes down).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from printgate.store.models.agent_health import AgentHealthRow, ReadingsDropRow


@dataclass(frozen=True, slots=True)
class ReadingsDrop:
    ip: str
    kind: str
    reason: str  # "agent queue overflow", "agent disk full"
    count: int
    first_at: datetime
    last_at: datetime


@dataclass(frozen=True, slots=True)
class AgentHealth:
    """What an agent last said about itself."""

    agent_id: str
    reported_at: datetime
    queue_length: int = 0
    queued_bytes: int = 0
    oldest_queued_at: datetime | None = None
    degraded: str = ""
    tasks: list[dict[str, Any]] = field(default_factory=list)  # name, state, restarts, last_error, last_error_at
    drops: list[ReadingsDrop] = field(default_factory=list)

    @property
    def unhealthy_tasks(self) -> list[dict[str, Any]]:
        return [t for t in self.tasks if t.get("state") not in ("running", "waiting")]  # waiting: for the cloud

    @property
    def dropped(self) -> int:
        return sum(d.count for d in self.drops)


async def record_health(s: AsyncSession, health: AgentHealth) -> None:
    row = await s.get(AgentHealthRow, health.agent_id)
    if row is None:
        row = AgentHealthRow(agent_id=health.agent_id)
        s.add(row)
    row.reported_at = health.reported_at
    row.queue_length = health.queue_length
    row.queued_bytes = health.queued_bytes
    row.oldest_queued_at = health.oldest_queued_at
    row.degraded = health.degraded[:500]
    row.tasks = health.tasks
    for d in health.drops:
        key = {"agent_id": health.agent_id, "ip": d.ip[:64], "kind": d.kind[:32], "reason": d.reason[:64]}
        drop = await s.get(ReadingsDropRow, key)
        if drop is None:
            s.add(ReadingsDropRow(**key, count=d.count, first_at=d.first_at, last_at=d.last_at))
        elif d.count > drop.count:
            drop.count, drop.first_at, drop.last_at = d.count, min(drop.first_at, d.first_at), d.last_at


async def health_of_agents(s: AsyncSession, agent_ids: Sequence[str]) -> dict[str, AgentHealth]:
    if not agent_ids:
        return {}
    rows = (await s.execute(select(AgentHealthRow).where(AgentHealthRow.agent_id.in_(list(agent_ids))))).scalars()
    drops: dict[str, list[ReadingsDrop]] = {}
    for d in (await s.execute(select(ReadingsDropRow).where(ReadingsDropRow.agent_id.in_(list(agent_ids)))
                              .order_by(ReadingsDropRow.ip, ReadingsDropRow.kind))).scalars():
        drops.setdefault(d.agent_id, []).append(_drop(d))
    return {
        r.agent_id: AgentHealth(r.agent_id, r.reported_at, r.queue_length, r.queued_bytes, r.oldest_queued_at,
                                r.degraded, list(r.tasks or []), drops.get(r.agent_id, []))
        for r in rows
    }


async def drops_at(s: AsyncSession, agent_id: str, ip: str) -> list[ReadingsDrop]:
    """The readings gaps of one device (by its agent and address), with their reason."""
    rows = (await s.execute(select(ReadingsDropRow).where(
        ReadingsDropRow.agent_id == agent_id, ReadingsDropRow.ip == ip).order_by(ReadingsDropRow.first_at)
    )).scalars()
    return [_drop(r) for r in rows]


def _drop(r: ReadingsDropRow) -> ReadingsDrop:
    return ReadingsDrop(r.ip, r.kind, r.reason, r.count, r.first_at, r.last_at)
