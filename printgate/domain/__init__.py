"""Domain types shared by every part of printgate (docs/architecture.md).

Frozen dataclasses, typed ids, and the DWA session state machine. No I/O.
Dealer (tenant) -> Customer -> Site -> Agent -> Device; users belong to a
dealer or a customer.

One module per bounded context (``ids``, ``tenancy``, ``devices``, ``dwa``,
``decisions``, ``approvals``, ``api_tokens``, ``browser_sessions``, ``audit``, ``channel``, ``monitoring``, ``fleet``); every name is
also importable from ``printgate.domain`` itself.
"""

from printgate.domain.api_tokens import (
    ApiToken as ApiToken,
)
from printgate.domain.approvals import (
    Approval as Approval,
)
from printgate.domain.audit import (
    AuditEventIn as AuditEventIn,
)
from printgate.domain.audit import (
    AuditRecord as AuditRecord,
)
from printgate.domain.audit import (
    Outcome as Outcome,
)
from printgate.domain.browser_sessions import (
    PortalSession as PortalSession,
)
from printgate.domain.channel import (
    AgentCertificate as AgentCertificate,
)
from printgate.domain.decisions import (
    Decision as Decision,
)
from printgate.domain.decisions import (
    Obligations as Obligations,
)
from printgate.domain.decisions import (
    Reason as Reason,
)
from printgate.domain.devices import (
    Device as Device,
)
from printgate.domain.devices import (
    DeviceIdentity as DeviceIdentity,
)
from printgate.domain.devices import (
    enterprise_of as enterprise_of,
)
from printgate.domain.devices import (
    normalised_field as normalised_field,
)
from printgate.domain.devices import (
    normalised_model as normalised_model,
)
from printgate.domain.dwa import (
    DWA_TRANSITIONS as DWA_TRANSITIONS,
)
from printgate.domain.dwa import (
    DwaSession as DwaSession,
)
from printgate.domain.dwa import (
    DwaState as DwaState,
)
from printgate.domain.dwa import (
    DwaTarget as DwaTarget,
)
from printgate.domain.dwa import (
    DwaTransition as DwaTransition,
)
from printgate.domain.dwa import (
    ReasonKind as ReasonKind,
)
from printgate.domain.dwa import (
    SessionReason as SessionReason,
)
from printgate.domain.fleet import (
    CurrentSupply as CurrentSupply,
)
from printgate.domain.fleet import (
    DeviceAlert as DeviceAlert,
)
from printgate.domain.fleet import (
    FleetDevice as FleetDevice,
)
from printgate.domain.ids import (
    AgentId as AgentId,
)
from printgate.domain.ids import (
    CustomerId as CustomerId,
)
from printgate.domain.ids import (
    DealerId as DealerId,
)
from printgate.domain.ids import (
    DeviceId as DeviceId,
)
from printgate.domain.ids import (
    SessionId as SessionId,
)
from printgate.domain.ids import (
    SiteId as SiteId,
)
from printgate.domain.ids import (
    UserId as UserId,
)
from printgate.domain.monitoring import (
    CounterValue as CounterValue,
)
from printgate.domain.monitoring import (
    DiscoveryResult as DiscoveryResult,
)
from printgate.domain.monitoring import (
    DiscoveryStatus as DiscoveryStatus,
)
from printgate.domain.monitoring import (
    PrinterAlert as PrinterAlert,
)
from printgate.domain.monitoring import (
    PrinterStatus as PrinterStatus,
)
from printgate.domain.monitoring import (
    Reading as Reading,
)
from printgate.domain.monitoring import (
    ReadingKind as ReadingKind,
)
from printgate.domain.monitoring import (
    SnmpCredential as SnmpCredential,
)
from printgate.domain.monitoring import (
    SnmpVersion as SnmpVersion,
)
from printgate.domain.monitoring import (
    SupplyLevel as SupplyLevel,
)
from printgate.domain.monitoring import (
    SupplyState as SupplyState,
)
from printgate.domain.monitoring import (
    numbered as numbered,
)
from printgate.domain.tenancy import (
    Agent as Agent,
)
from printgate.domain.tenancy import (
    AlertSeverity as AlertSeverity,
)
from printgate.domain.tenancy import (
    Customer as Customer,
)
from printgate.domain.tenancy import (
    Dealer as Dealer,
)
from printgate.domain.tenancy import (
    RemoteAccessMode as RemoteAccessMode,
)
from printgate.domain.tenancy import (
    Role as Role,
)
from printgate.domain.tenancy import (
    SignInRecord as SignInRecord,
)
from printgate.domain.tenancy import (
    Site as Site,
)
from printgate.domain.tenancy import (
    User as User,
)
