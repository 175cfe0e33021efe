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
    """A customer's choice for remote web access to its devices."""

    OPEN = "open"
    APPROVAL_REQUIRED = "approval_required"
    NEVER = "never"


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
