"""Readings uploaded by agents (monitoring), and the batches that carried them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Integer, PrimaryKeyConstraint, String
from sqlalchemy.orm import Mapped, mapped_column

from printgate.store.models.base import Base, UtcDateTime


class ReadingBatchRow(Base):
    """One upload; (agent_id, batch_id) unique makes ingestion idempotent."""

    __tablename__ = "reading_batches"
    __table_args__ = (PrimaryKeyConstraint("agent_id", "batch_id"),)
    agent_id: Mapped[str] = mapped_column(String(64))
    batch_id: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(UtcDateTime())
    count: Mapped[int] = mapped_column(Integer)


class ReadingRow(Base):
    __tablename__ = "readings"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    agent_id: Mapped[str] = mapped_column(String(64), index=True)
    batch_id: Mapped[str] = mapped_column(String(64))
    ip: Mapped[str] = mapped_column(String(64), index=True)
    serial: Mapped[str | None] = mapped_column(String(128), index=True, nullable=True)
    taken_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)
    kinds: Mapped[str] = mapped_column(String(64))
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
