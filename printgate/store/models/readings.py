"""Readings uploaded by agents (monitoring), and the batches that carried them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Float, Index, Integer, PrimaryKeyConstraint, String
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
    content_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)  # SHA-256 hex (0021)


class ReadingRow(Base):
    __tablename__ = "readings"
    __table_args__ = (Index("ix_readings_device_taken", "device_id", "taken_at"),)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    agent_id: Mapped[str] = mapped_column(String(64), index=True)
    batch_id: Mapped[str] = mapped_column(String(64))
    ip: Mapped[str] = mapped_column(String(64), index=True)
    serial: Mapped[str | None] = mapped_column(String(128), index=True, nullable=True)
    taken_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)
    kinds: Mapped[str] = mapped_column(String(64))
    device_id: Mapped[str | None] = mapped_column(String(64), nullable=True)  # mapped at ingest (0006)
    body: Mapped[dict[str, Any]] = mapped_column(JSON)


class DeviceStateRow(Base):
    """The newest known state of one device, kept current as readings arrive.

    ``*_at`` hold the ``taken_at`` of the reading that set each part, so a
    reading that arrives late (store-and-forward replay) never overwrites a
    newer state.
    """

    __tablename__ = "device_states"
    device_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_reading_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    counters_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    supplies_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    alerts_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    page_count: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    printer_status: Mapped[str | None] = mapped_column(String(32), nullable=True)
    device_status: Mapped[str | None] = mapped_column(String(32), nullable=True)
    error_state: Mapped[list[str]] = mapped_column(JSON, default=list)
    # kept by database triggers on device_alerts / device_supplies (0023), read by the overview:
    open_alerts: Mapped[int] = mapped_column(Integer, server_default="0")
    alert_severity: Mapped[int] = mapped_column(Integer, server_default="0")  # 3 critical, 2 open, 0
    lowest_percent: Mapped[float | None] = mapped_column(Float, nullable=True)  # lowest consumable (no waste)


class DeviceSupplyRow(Base):
    """Current level of one supply (prtMarkerSuppliesTable row) of a device."""

    __tablename__ = "device_supplies"
    __table_args__ = (PrimaryKeyConstraint("device_id", "supply_index"),)
    device_id: Mapped[str] = mapped_column(String(64))
    supply_index: Mapped[int] = mapped_column(Integer)
    description: Mapped[str] = mapped_column(String(1024))
    type: Mapped[str] = mapped_column(String(64))
    colour: Mapped[str | None] = mapped_column(String(64), nullable=True)
    unit: Mapped[str] = mapped_column(String(64))
    max_capacity: Mapped[int | None] = mapped_column(Integer, nullable=True)
    level: Mapped[int | None] = mapped_column(Integer, nullable=True)
    state: Mapped[str] = mapped_column(String(16))
    percent: Mapped[float | None] = mapped_column(Float, nullable=True)
    taken_at: Mapped[datetime] = mapped_column(UtcDateTime())


class DeviceAlertRow(Base):
    """One printer alert: raised when first reported, cleared when a later
    alerts reading no longer contains it (``cleared_at`` NULL = open)."""

    __tablename__ = "device_alerts"
    __table_args__ = (Index("ix_device_alerts_device_open", "device_id", "cleared_at"),)
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    device_id: Mapped[str] = mapped_column(String(64))
    alert_key: Mapped[str] = mapped_column(String(200))
    alert_index: Mapped[int] = mapped_column(Integer)
    severity: Mapped[str] = mapped_column(String(32))
    group: Mapped[str] = mapped_column(String(64))
    code: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(String(1024))
    training_level: Mapped[str | None] = mapped_column(String(64), nullable=True)
    raised_at: Mapped[datetime] = mapped_column(UtcDateTime())
    last_seen_at: Mapped[datetime] = mapped_column(UtcDateTime())
    cleared_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class SupplyThresholdRow(Base):
    """A tenant's (dealer's) supply alert thresholds in percent (0010); none: the defaults."""

    __tablename__ = "supply_thresholds"
    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    warning_percent: Mapped[int] = mapped_column(Integer)
    critical_percent: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_by: Mapped[str] = mapped_column(String(320))


class ReadingsRetentionRow(Base):
    """A dealer's days of readings history kept (0017); none: the default."""

    __tablename__ = "readings_retention"
    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    days: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_by: Mapped[str] = mapped_column(String(320))
