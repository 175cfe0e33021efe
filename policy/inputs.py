"""What the caller tells the engine: subject, resource, action and context.

All facts are plain frozen data built by the caller (the broker builds them
from the store); the engine never looks anything up and never reads a clock.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from policy.access import OpenAlert
from printgate.domain import (
    AlertSeverity,
    CustomerId,
    DealerId,
    Device,
    RemoteAccessMode,
    Role,
    SessionReason,
    SiteId,
    User,
)


class Action(enum.StrEnum):
    DWA_OPEN = "dwa.open"
    DWA_EXTEND = "dwa.extend"
    DEVICE_READ = "device.read"
    AUDIT_READ = "audit.read"
    APPROVAL_DECIDE = "approval.decide"
    ADMIN_USERS = "admin.users"
    ADMIN_POLICY = "admin.policy"
    ADMIN_TENANTS = "admin.tenants"
    # signed in to a device's admin pages by the proxy with a stored credential (issue 19):
    # a right of its own, never implied by dwa.*
    CREDENTIALS_USE = "credentials.use"

    @property
    def is_dwa(self) -> bool:
        return self in (Action.DWA_OPEN, Action.DWA_EXTEND)


class MfaMethod(enum.StrEnum):
    TOTP = "totp"
    RECOVERY_CODE = "recovery_code"
    IDP = "idp"  # the SAML/OIDC identity provider asserted MFA


@dataclass(frozen=True, slots=True)
class Subject:
    """Who asks: the user, how fresh their MFA is and where they come from."""

    user: User
    source_ip: str
    mfa_age_seconds: float | None = None  # None: no MFA in this login
    mfa_method: MfaMethod | None = None

    @property
    def roles(self) -> frozenset[Role]:
        return self.user.roles


@dataclass(frozen=True, slots=True)
class Resource:
    """The device asked for, with the facts about its owner and its agent."""

    device: Device
    dealer_id: DealerId
    customer_id: CustomerId
    site_id: SiteId
    remote_access: RemoteAccessMode = RemoteAccessMode.OPEN
    agent_online: bool = False
    agent_enrolled: bool = True  # agent exists and is not revoked
    # the mode in force (the site's own, else the customer's) decides with these (issue 20)
    alert_min_severity: AlertSeverity = AlertSeverity.CRITICAL
    open_alerts: tuple[OpenAlert, ...] = ()


@dataclass(frozen=True, slots=True)
class Context:
    """Facts of the moment: ``now`` (aware) and live counts, approvals."""

    now: datetime
    user_live_sessions: int = 0
    device_live_sessions: int = 0
    approved_until: datetime | None = None  # a customer admin's approval for this user+device
    reason: SessionReason | None = None  # why the session is opened (issue 20)

    def __post_init__(self) -> None:
        if self.now.tzinfo is None:
            raise ValueError("Context.now must be timezone-aware")
