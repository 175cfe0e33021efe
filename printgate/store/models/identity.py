"""Identity and policy tables: portal sessions, MFA recovery codes, API tokens,
SSO providers and replay cache, invitations, customer approvals, rule sets."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from printgate.store.models.base import Base, UtcDateTime


class PolicyRuleSetRow(Base):
    """Every version of every tenant's rule set (append-only; newest is current)."""

    __tablename__ = "policy_rulesets"
    __table_args__ = (UniqueConstraint("dealer_id", "version", name="uq_policy_rulesets_version"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dealer_id: Mapped[str] = mapped_column(ForeignKey("dealers.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    created_by: Mapped[str] = mapped_column(String(320))


class PortalSessionRow(Base):
    """A browser login. ``id`` is the SHA-256 of the cookie token (never the token)."""

    __tablename__ = "portal_sessions"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    stage: Mapped[str] = mapped_column(String(16))  # "password" (awaiting TOTP) | "full"
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UtcDateTime)
    mfa_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    mfa_method: Mapped[str | None] = mapped_column(String(16), nullable=True)
    auth_method: Mapped[str] = mapped_column(String(16), default="password")
    source_ip: Mapped[str] = mapped_column(String(64), default="")
    csrf_secret: Mapped[str] = mapped_column(String(64))


class RecoveryCodeRow(Base):
    __tablename__ = "mfa_recovery_codes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64))
    used_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class ApiTokenRow(Base):
    __tablename__ = "api_tokens"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class SsoProviderRow(Base):
    """A tenant's SAML or OIDC identity provider and its group -> role mapping."""

    __tablename__ = "sso_providers"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))  # "saml" | "oidc"
    name: Mapped[str] = mapped_column(String(200))
    dealer_id: Mapped[str | None] = mapped_column(ForeignKey("dealers.id"), nullable=True)
    customer_id: Mapped[str | None] = mapped_column(ForeignKey("customers.id"), nullable=True)
    config: Mapped[dict[str, Any]] = mapped_column(JSON)  # kind-specific, validated by the portal
    role_map: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)  # group -> role
    default_roles: Mapped[list[str]] = mapped_column(JSON, default=list)
    mfa_asserted: Mapped[bool] = mapped_column(Boolean, default=False)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)


class SsoReplayRow(Base):
    """Seen SAML assertion ids / OIDC states, refused when presented again."""

    __tablename__ = "sso_replay_cache"
    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)


class SsoPendingRow(Base):
    """An SSO login in flight (one use): OIDC state -> nonce + PKCE verifier; SAML AuthnRequest id."""

    __tablename__ = "sso_pending"
    state: Mapped[str] = mapped_column(String(128), primary_key=True)
    provider_id: Mapped[str] = mapped_column(ForeignKey("sso_providers.id"))
    nonce: Mapped[str] = mapped_column(String(128), default="")
    code_verifier: Mapped[str] = mapped_column(String(128), default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class InvitationRow(Base):
    __tablename__ = "invitations"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str] = mapped_column(String(320))
    roles: Mapped[list[str]] = mapped_column(JSON, default=list)
    dealer_id: Mapped[str | None] = mapped_column(ForeignKey("dealers.id"), nullable=True)
    customer_id: Mapped[str | None] = mapped_column(ForeignKey("customers.id"), nullable=True)
    invited_by: Mapped[str] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    accepted_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class ApprovalRow(Base):
    """A technician's request to open a device whose customer requires approval."""

    __tablename__ = "dwa_approvals"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"), index=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)  # pending|approved|denied
    reason: Mapped[str] = mapped_column(Text, default="")
    requested_at: Mapped[datetime] = mapped_column(UtcDateTime)
    decided_by: Mapped[str | None] = mapped_column(String(320), nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    approved_until: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
