"""Core tables: tenants, agents, devices, users, DWA sessions, simple audit."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Index, Integer, String, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from printgate.store.models.base import Base, UtcDateTime


class DealerRow(Base):
    __tablename__ = "dealers"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))


class CustomerRow(Base):
    __tablename__ = "customers"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    dealer_id: Mapped[str] = mapped_column(ForeignKey("dealers.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    remote_access: Mapped[str] = mapped_column(String(32), default="open")


# a dealer's customer names are unique, case and surrounding blanks ignored (0014)
Index("uq_customers_dealer_name", CustomerRow.dealer_id, func.lower(func.trim(CustomerRow.name)), unique=True)


class SiteRow(Base):
    __tablename__ = "sites"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    # the site's own remote-access mode (0018); NULL: the customer's applies
    remote_access: Mapped[str | None] = mapped_column(String(32), nullable=True)
    alert_min_severity: Mapped[str] = mapped_column(String(16), default="critical", server_default="critical")


class AgentRow(Base):
    __tablename__ = "agents"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    online: Mapped[bool] = mapped_column(Boolean, default=False)
    last_seen: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


class DeviceRow(Base):
    __tablename__ = "devices"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id"), index=True)
    agent_id: Mapped[str] = mapped_column(ForeignKey("agents.id"), index=True)
    ip: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200), default="")
    ews_port: Mapped[int] = mapped_column(Integer, default=80)
    ews_scheme: Mapped[str] = mapped_column(String(8), default="http")
    # ews_port 0: each web port the agent tried and how it failed ("443/https refused; ...")
    ews_probe: Mapped[str] = mapped_column(String(1000), default="", server_default="")
    serial: Mapped[str | None] = mapped_column(String(128), nullable=True, index=True)
    mac: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    model: Mapped[str | None] = mapped_column(String(256), nullable=True)
    sys_object_id: Mapped[str | None] = mapped_column(String(256), nullable=True)
    vendor: Mapped[str | None] = mapped_column(String(64), nullable=True)
    sys_name: Mapped[str | None] = mapped_column(String(256), nullable=True)
    location: Mapped[str | None] = mapped_column(String(256), nullable=True)
    tls_fingerprint: Mapped[str | None] = mapped_column(String(128), nullable=True)
    labels: Mapped[list[str]] = mapped_column(JSON, default=list)
    blocked: Mapped[bool] = mapped_column(Boolean, default=False)
    identity_verified: Mapped[bool] = mapped_column(Boolean, default=True)
    first_seen: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    last_seen: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    previous_model: Mapped[str | None] = mapped_column(String(256), nullable=True)  # before the last change (0010)
    model_changed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class UserRow(Base):
    __tablename__ = "users"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    roles: Mapped[list[str]] = mapped_column(JSON, default=list)
    dealer_id: Mapped[str | None] = mapped_column(ForeignKey("dealers.id"), nullable=True)
    customer_id: Mapped[str | None] = mapped_column(ForeignKey("customers.id"), nullable=True)
    password_hash: Mapped[str | None] = mapped_column(Text, nullable=True)
    totp_secret: Mapped[str | None] = mapped_column(String(64), nullable=True)
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)


class DwaSessionRow(Base):
    __tablename__ = "dwa_sessions"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"), index=True)
    agent_id: Mapped[str] = mapped_column(ForeignKey("agents.id"))
    target_ip: Mapped[str] = mapped_column(String(64))
    target_port: Mapped[int] = mapped_column(Integer)
    target_scheme: Mapped[str] = mapped_column(String(8))
    state: Mapped[str] = mapped_column(String(16), index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    # why it was opened: SessionReason.to_dict() (0018); NULL for older sessions
    reason: Mapped[dict[str, object] | None] = mapped_column(JSON, nullable=True)
    # the gateway node that owns it (0022, models.nodes); NULL: opened before nodes existed
    node_id: Mapped[str | None] = mapped_column(String(128), nullable=True, index=True)

    # an agent's sessions whose credential is still valid, read when it connects to any node (0027)
    __table_args__ = (Index("ix_dwa_sessions_agent_expires", "agent_id", "expires_at"),)


class DwaTransitionRow(Base):
    __tablename__ = "dwa_transitions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("dwa_sessions.id"), index=True)
    state: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    reason: Mapped[str] = mapped_column(Text)
