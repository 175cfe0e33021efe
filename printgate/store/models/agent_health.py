"""What agents say about their own health (heartbeat): supervised tasks, queue, drops, degradation."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Integer, PrimaryKeyConstraint, String
from sqlalchemy.orm import Mapped, mapped_column

from printgate.store.models.base import Base, UtcDateTime


class AgentHealthRow(Base):
    """The latest health an agent reported; one row per agent, replaced by each heartbeat."""

    __tablename__ = "agent_health"
    agent_id: Mapped[str] = mapped_column(ForeignKey("agents.id"), primary_key=True)
    reported_at: Mapped[datetime] = mapped_column(UtcDateTime)
    queue_length: Mapped[int] = mapped_column(Integer, default=0)
    queued_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    oldest_queued_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    degraded: Mapped[str] = mapped_column(String(500), default="")
    tasks: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)


class ReadingsDropRow(Base):
    """Readings of one device and kind an agent never delivered, and why (totals as reported)."""

    __tablename__ = "readings_drops"
    __table_args__ = (PrimaryKeyConstraint("agent_id", "ip", "kind", "reason"),)
    agent_id: Mapped[str] = mapped_column(ForeignKey("agents.id"))
    ip: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(String(64))
    count: Mapped[int] = mapped_column(BigInteger)
    first_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_at: Mapped[datetime] = mapped_column(UtcDateTime)
