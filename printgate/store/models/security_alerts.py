"""Security alerting's tables: per-tenant subscriptions, the alerts raised, their deliveries
(one per channel and target, retried until sent or dead) and the follower's cursor."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from printgate.store.models.base import Base, UtcDateTime


class SecuritySubscriptionRow(Base):
    """A security contact of a dealer (``customer_id`` NULL) or of one customer."""

    __tablename__ = "security_subscriptions"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    dealer_id: Mapped[str] = mapped_column(ForeignKey("dealers.id"), index=True)
    customer_id: Mapped[str | None] = mapped_column(ForeignKey("customers.id"), nullable=True, index=True)
    contact: Mapped[str] = mapped_column(String(200))
    channel: Mapped[str] = mapped_column(String(16))  # email | webhook | syslog
    target: Mapped[str] = mapped_column(String(512))
    secret: Mapped[str | None] = mapped_column(String(200), nullable=True)  # webhook signing secret
    categories: Mapped[str] = mapped_column(String(200))  # comma-separated; "" = all
    min_severity: Mapped[int] = mapped_column(Integer)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    created_by: Mapped[str | None] = mapped_column(String(320), nullable=True)


class SecurityAlertRow(Base):
    """An alert or storm summary as raised (``id`` is the engine's stable id)."""

    __tablename__ = "security_alerts"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    rule: Mapped[str] = mapped_column(String(64))
    category: Mapped[str] = mapped_column(String(32))
    severity: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(String(300))
    text: Mapped[str] = mapped_column(Text)
    dealer_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    customer_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    subject: Mapped[str] = mapped_column(String(300))
    count: Mapped[int] = mapped_column(Integer)
    first_seq: Mapped[int] = mapped_column(BigInteger)
    last_seq: Mapped[int] = mapped_column(BigInteger)
    first_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_at: Mapped[datetime] = mapped_column(UtcDateTime)
    payload: Mapped[str] = mapped_column(Text)  # the JSON body sent to webhooks
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)


class SecurityAlertDeliveryRow(Base):
    """One alert to one channel target: pending (due at ``next_at``), sent or dead."""

    __tablename__ = "security_alert_deliveries"
    __table_args__ = (UniqueConstraint("alert_id", "channel", "target"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    alert_id: Mapped[str] = mapped_column(ForeignKey("security_alerts.id"), index=True)
    subscription_id: Mapped[str | None] = mapped_column(String(32), nullable=True)  # NULL: an operator target
    channel: Mapped[str] = mapped_column(String(16))
    target: Mapped[str] = mapped_column(String(512))
    status: Mapped[str] = mapped_column(String(16), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_error: Mapped[str | None] = mapped_column(String(500), nullable=True)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class SecurityAlertCursorRow(Base):
    """How far the follower has read the audit table, and its engine's state (JSON)."""

    __tablename__ = "security_alert_cursor"
    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    last_seq: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
