"""Agent channel tables: enrolment tokens, issued agent certificates, processed batches."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from printgate.store.models.base import Base, UtcDateTime


class EnrolmentTokenRow(Base):
    """A one-time enrolment token; only its sha256 is stored."""

    __tablename__ = "enrolment_tokens"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id"), index=True)
    created_by: Mapped[str] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    used_by_agent: Mapped[str | None] = mapped_column(String(64), nullable=True)
    token_id: Mapped[str | None] = mapped_column(String(32), nullable=True, unique=True, index=True)
    used_key_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)  # SPKI the token was redeemed for


class AgentCertificateRow(Base):
    """An X.509 client certificate issued to an agent by the agent CA."""

    __tablename__ = "agent_certificates"
    serial: Mapped[str] = mapped_column(String(64), primary_key=True)  # hex
    agent_id: Mapped[str] = mapped_column(ForeignKey("agents.id"), index=True)
    site_id: Mapped[str] = mapped_column(String(64))
    fingerprint: Mapped[str] = mapped_column(String(64))  # sha256 hex of DER
    not_before: Mapped[datetime] = mapped_column(UtcDateTime)
    not_after: Mapped[datetime] = mapped_column(UtcDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True, index=True)
    revoked_reason: Mapped[str | None] = mapped_column(String(200), nullable=True)


class AgentRekeyGrantRow(Base):
    """An admin's one-time permission for an agent to renew its certificate for a new key."""

    __tablename__ = "agent_rekey_grants"
    agent_id: Mapped[str] = mapped_column(ForeignKey("agents.id"), primary_key=True)
    granted_by: Mapped[str] = mapped_column(String(320))
    granted_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
