"""Tenancy: dealers (tenants), their customers and sites, agents, users and roles."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from printgate.domain.ids import AgentId, CustomerId, DealerId, SiteId, UserId


class Role(enum.StrEnum):
    DEALER_ADMIN = "dealer_admin"
    TECHNICIAN = "technician"
    VIEWER = "viewer"
    AUDITOR = "auditor"
    CUSTOMER_ADMIN = "customer_admin"


class RemoteAccessMode(enum.StrEnum):
    """A customer's (or one of its sites') choice for remote web access to its devices."""

    OPEN = "open"
    APPROVAL_REQUIRED = "approval_required"
    NEVER = "never"
    # auto-approved while an alert of at least the site's severity is open on the device,
    # otherwise approval required (issue 20)
    ALERT_AUTO = "alert_auto"
    TICKET = "ticket"  # a ticket reference is required as the session's reason (issue 20)


class AlertSeverity(enum.StrEnum):
    """The threshold of ``RemoteAccessMode.ALERT_AUTO``: an open alert at least this severe."""

    WARNING = "warning"
    CRITICAL = "critical"


@dataclass(frozen=True, slots=True)
class Dealer:
    id: DealerId
    name: str


@dataclass(frozen=True, slots=True)
class Customer:
    id: CustomerId
    dealer_id: DealerId
    name: str
    remote_access: RemoteAccessMode = RemoteAccessMode.OPEN


@dataclass(frozen=True, slots=True)
class Site:
    id: SiteId
    customer_id: CustomerId
    name: str
    remote_access: RemoteAccessMode | None = None  # None: the customer's choice applies
    alert_min_severity: AlertSeverity = AlertSeverity.CRITICAL  # for ALERT_AUTO

    def access_mode(self, customer_mode: RemoteAccessMode) -> RemoteAccessMode:
        """The mode in force for the site's devices: the site's own, else the customer's."""
        return self.remote_access if self.remote_access is not None else customer_mode


@dataclass(frozen=True, slots=True)
class Agent:
    id: AgentId
    site_id: SiteId
    name: str
    online: bool = False
    last_seen: datetime | None = None
    revoked: bool = False


@dataclass(frozen=True, slots=True)
class User:
    id: UserId
    email: str
    display_name: str
    roles: frozenset[Role]
    dealer_id: DealerId | None = None
    customer_id: CustomerId | None = None
    disabled: bool = False

    @property
    def tenant(self) -> str:
        return self.customer_id or self.dealer_id or ""


@dataclass(frozen=True, slots=True)
class SignInRecord:
    """What signing in with a password needs to know about a user (hashes only, never a secret in clear):
    the user, the password hash, whether an authenticator is enrolled, and the lock-out state."""

    user: User
    password_hash: str | None
    totp_enrolled: bool
    failed_logins: int = 0
    locked_until: datetime | None = None

    def locked_at(self, now: datetime) -> bool:
        return self.locked_until is not None and self.locked_until > now
