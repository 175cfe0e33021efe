"""Domain types shared by every part of printgate (docs/architecture.md).

Frozen dataclasses, typed ids, and the DWA session state machine. No I/O.
Dealer (tenant) -> Customer -> Site -> Agent -> Device; users belong to a
dealer or a customer.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import NewType

from printgate.errors import InvalidTransition

DealerId = NewType("DealerId", str)
CustomerId = NewType("CustomerId", str)
SiteId = NewType("SiteId", str)
AgentId = NewType("AgentId", str)
DeviceId = NewType("DeviceId", str)
UserId = NewType("UserId", str)
SessionId = NewType("SessionId", str)


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


_VERSION_WORD = re.compile(
    r"\b(?:firmware|fw|ver(?:sion)?|rev(?:ision)?|build|v)\b\.?\s*[:=]?\s*\S*\d\S*", re.IGNORECASE
)
_VERSION_NUMBER = re.compile(r"(?<![\w-])\d+(?:\.\d+)+\S*|\([^)]*\d[^)]*\)")


def normalised_model(model: str) -> str:
    """A model without what firmware updates change: the text after ';' or ',', version
    words and numbers ("Firmware Ver.1.01 (08.12.12)", "Rev 2.3", "V4.10"), case, spacing."""
    head = re.split(r"[;,]", model, maxsplit=1)[0]
    head = _VERSION_NUMBER.sub(" ", _VERSION_WORD.sub(" ", head))
    return " ".join(head.lower().split())


def normalised_field(name: str, value: str) -> str:
    if name == "mac":
        return value.lower().replace("-", ":")
    return value.strip()


def enterprise_of(sys_object_id: str | None) -> str | None:
    """The IANA enterprise number in a sysObjectID (1.3.6.1.4.1.<n>...), the maker."""
    if not sys_object_id or not sys_object_id.startswith("1.3.6.1.4.1."):
        return None
    return sys_object_id.split(".")[6] if len(sys_object_id.split(".")) > 6 else None


@dataclass(frozen=True, slots=True)
class DeviceIdentity:
    """What a device is, as recorded at discovery. ``None`` means unknown."""

    serial: str | None = None
    mac: str | None = None
    model: str | None = None
    sys_object_id: str | None = None
    vendor: str | None = None
    sys_name: str | None = None
    location: str | None = None
    tls_fingerprint: str | None = None  # sha256 hex of the EWS certificate (DER)

    def mismatches(self, observed: DeviceIdentity) -> list[str]:
        """Identity fields known on both sides whose values differ.

        Identity rests on the serial, the MAC and the maker (sysObjectID's
        enterprise); the model counts only when neither serial nor MAC is
        known on both sides, and then normalised (``normalised_model``), so a
        firmware update that rewrites the description is not another device.
        """
        diffs: list[str] = []
        anchored = False
        for name in ("serial", "mac"):
            expected, seen = getattr(self, name), getattr(observed, name)
            if expected is not None and seen is not None:
                anchored = True
                if normalised_field(name, expected) != normalised_field(name, seen):
                    diffs.append(name)
        if enterprise_of(self.sys_object_id) and enterprise_of(observed.sys_object_id) and (
            enterprise_of(self.sys_object_id) != enterprise_of(observed.sys_object_id)
        ):
            diffs.append("sys_object_id")
        if not anchored and self.model is not None and observed.model is not None and (
            normalised_model(self.model) != normalised_model(observed.model)
        ):
            diffs.append("model")
        return diffs

    def describe(self) -> str:
        return self.serial or self.mac or self.model or "unknown device"


@dataclass(frozen=True, slots=True)
class Device:
    id: DeviceId
    site_id: SiteId
    agent_id: AgentId
    ip: str
    identity: DeviceIdentity
    name: str = ""
    ews_port: int = 80
    ews_scheme: str = "http"
    labels: frozenset[str] = frozenset()
    blocked: bool = False
    identity_verified: bool = True
    previous_model: str | None = None  # the model text before its last change (firmware update)
    model_changed_at: datetime | None = None


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
class DwaTarget:
    ip: str
    port: int
    scheme: str = "http"

    @property
    def origin(self) -> str:
        default = 443 if self.scheme == "https" else 80
        host = self.ip if self.port == default else f"{self.ip}:{self.port}"
        return f"{self.scheme}://{host}"


class DwaState(enum.StrEnum):
    REQUESTED = "requested"
    AUTHORISED = "authorised"
    TUNNEL_OPEN = "tunnel_open"
    ACTIVE = "active"
    CLOSED = "closed"
    DENIED = "denied"
    FAILED = "failed"

    @property
    def is_final(self) -> bool:
        return self in _FINAL


_FINAL = frozenset({DwaState.CLOSED, DwaState.DENIED, DwaState.FAILED})

DWA_TRANSITIONS: dict[DwaState, frozenset[DwaState]] = {
    DwaState.REQUESTED: frozenset({DwaState.AUTHORISED, DwaState.DENIED, DwaState.FAILED}),
    DwaState.AUTHORISED: frozenset({DwaState.TUNNEL_OPEN, DwaState.FAILED, DwaState.CLOSED}),
    DwaState.TUNNEL_OPEN: frozenset({DwaState.ACTIVE, DwaState.FAILED, DwaState.CLOSED}),
    DwaState.ACTIVE: frozenset({DwaState.CLOSED, DwaState.FAILED}),
    DwaState.CLOSED: frozenset(),
    DwaState.DENIED: frozenset(),
    DwaState.FAILED: frozenset(),
}


@dataclass(frozen=True, slots=True)
class DwaTransition:
    state: DwaState
    at: datetime
    reason: str


@dataclass(frozen=True, slots=True)
class DwaSession:
    id: SessionId
    user_id: UserId
    device_id: DeviceId
    agent_id: AgentId
    target: DwaTarget
    created_at: datetime
    expires_at: datetime
    state: DwaState = DwaState.REQUESTED
    ended_at: datetime | None = None
    history: tuple[DwaTransition, ...] = ()

    def transition(self, new: DwaState, *, at: datetime, reason: str) -> DwaSession:
        """Return the session moved to ``new``; refuse moves the machine forbids."""
        if new not in DWA_TRANSITIONS[self.state]:
            raise InvalidTransition(
                f"session {self.id} cannot go from {self.state} to {new} ({reason})"
            )
        return replace(
            self,
            state=new,
            ended_at=at if new.is_final else self.ended_at,
            history=(*self.history, DwaTransition(new, at, reason)),
        )

    def is_live(self, now: datetime) -> bool:
        return not self.state.is_final and now < self.expires_at

    def remaining_seconds(self, now: datetime) -> int:
        return max(0, int((self.expires_at - now).total_seconds()))


@dataclass(frozen=True, slots=True)
class Reason:
    """Why a decision went the way it did: machine code + human text."""

    code: str
    message: str


@dataclass(frozen=True, slots=True)
class Obligations:
    max_duration_seconds: int | None = None
    idle_timeout_seconds: int | None = None
    requires_customer_approval: bool = False
    step_up_mfa: bool = False


@dataclass(frozen=True, slots=True)
class Decision:
    allow: bool
    reasons: tuple[Reason, ...] = ()
    obligations: Obligations = field(default_factory=Obligations)

    def explain(self) -> str:
        verdict = "ALLOW" if self.allow else "DENY"
        lines = [verdict] + [f"  [{r.code}] {r.message}" for r in self.reasons]
        return "\n".join(lines)


class Outcome(enum.StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"
    DENIED = "denied"
    BLOCKED = "blocked"


@dataclass(frozen=True, slots=True)
class AuditEventIn:
    """An event to append to the audit trail (the caller's view)."""

    type: str
    outcome: Outcome = Outcome.SUCCESS
    actor: str | None = None
    dealer_id: str | None = None
    customer_id: str | None = None
    device_id: str | None = None
    session_id: str | None = None
    source_ip: str | None = None
    details: dict[str, object] = field(default_factory=dict)
    # further identifying fields (e.g. a login name tried); stored like actor/source_ip
    personal: dict[str, str] = field(default_factory=dict)


# --- channel ---


@dataclass(frozen=True, slots=True)
class AgentCertificate:
    """An X.509 client certificate the agent CA issued to an agent."""

    serial: str  # hex
    agent_id: AgentId
    site_id: SiteId
    fingerprint: str  # sha256 hex of the DER
    not_before: datetime
    not_after: datetime
    revoked_at: datetime | None = None
    revoked_reason: str | None = None

    def is_valid(self, now: datetime) -> bool:
        return self.revoked_at is None and self.not_before <= now < self.not_after


# --- monitoring ---


class SnmpVersion(enum.StrEnum):
    V1 = "v1"
    V2C = "v2c"
    V3 = "v3"


@dataclass(frozen=True, slots=True)
class SnmpCredential:
    """One SNMP credential set; the agent tries its list in order.

    v1/v2c: ``community``. v3: ``user`` with ``auth_protocol`` (SHA, SHA224,
    SHA256, SHA384, SHA512; None = noAuth) and ``priv_protocol`` (AES128,
    AES256; None = noPriv). Keys never appear in ``repr``.
    """

    version: SnmpVersion = SnmpVersion.V2C
    community: str = field(default="public", repr=False)
    user: str = ""
    auth_protocol: str | None = None
    auth_key: str = field(default="", repr=False)
    priv_protocol: str | None = None
    priv_key: str = field(default="", repr=False)
    position: int = field(default=0, compare=False)  # 1-based place in the configured list (0: unknown)

    @classmethod
    def v2c(cls, community: str) -> SnmpCredential:
        return cls(SnmpVersion.V2C, community=community)

    @classmethod
    def v1(cls, community: str) -> SnmpCredential:
        return cls(SnmpVersion.V1, community=community)

    @classmethod
    def v3(
        cls,
        user: str,
        *,
        auth_protocol: str | None = "SHA256",
        auth_key: str = "",
        priv_protocol: str | None = "AES128",
        priv_key: str = "",
    ) -> SnmpCredential:
        return cls(
            SnmpVersion.V3, community="", user=user, auth_protocol=auth_protocol,
            auth_key=auth_key, priv_protocol=priv_protocol, priv_key=priv_key,
        )

    @property
    def label(self) -> str:
        """Safe to log: says which credential, never its secret."""
        if self.version is SnmpVersion.V3:
            level = "authPriv" if self.priv_protocol else "authNoPriv" if self.auth_protocol else "noAuthNoPriv"
            return f"v3:{self.user}:{level}"
        return f"{self.version}:community {self.position}" if self.position else f"{self.version}:community"


def numbered(credentials: Iterable[SnmpCredential]) -> list[SnmpCredential]:
    """The credentials in order, each labelled by its position ("v2c:community 2"), never by its secret."""
    return [replace(c, position=n) for n, c in enumerate(credentials, start=1)]


class DiscoveryStatus(enum.StrEnum):
    PRINTER = "printer"
    EXCLUDED = "excluded"
    UNREACHABLE = "unreachable"
    AUTH_FAILED = "auth_failed"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class DiscoveryResult:
    ip: str
    status: DiscoveryStatus
    reason: str = ""
    identity: DeviceIdentity | None = None
    credential: str | None = None  # SnmpCredential.label that answered


class SupplyState(enum.StrEnum):
    """RFC 3805 prtMarkerSuppliesLevel/MaxCapacity: a number or a special value."""

    KNOWN = "known"
    OTHER = "other"  # -1
    UNKNOWN = "unknown"  # -2
    SOME_REMAINING = "some_remaining"  # -3


@dataclass(frozen=True, slots=True)
class SupplyLevel:
    index: int
    description: str
    type: str
    colour: str | None
    unit: str
    max_capacity: int | None
    level: int | None
    state: SupplyState = SupplyState.KNOWN

    @property
    def percent(self) -> float | None:
        if self.level is None or not self.max_capacity or self.max_capacity <= 0:
            return None
        return round(100.0 * self.level / self.max_capacity, 1)


@dataclass(frozen=True, slots=True)
class CounterValue:
    """A page counter: ``marker.<n>.life`` (prtMarkerLifeCount) or a vendor name."""

    name: str
    value: int
    unit: str = "impressions"


@dataclass(frozen=True, slots=True)
class PrinterAlert:
    index: int
    severity: str
    group: str
    code: str
    description: str
    training_level: str | None = None


@dataclass(frozen=True, slots=True)
class PrinterStatus:
    status: str | None  # hrPrinterStatus name
    errors: tuple[str, ...] = ()  # hrPrinterDetectedErrorState bit names
    device_status: str | None = None  # hrDeviceStatus name


class ReadingKind(enum.StrEnum):
    COUNTERS = "counters"
    SUPPLIES = "supplies"
    ALERTS = "alerts"


@dataclass(frozen=True, slots=True)
class Reading:
    """One poll of one device: whatever kinds were asked, plus per-value errors."""

    id: str
    ip: str
    taken_at: datetime
    kinds: tuple[ReadingKind, ...]
    serial: str | None = None
    counters: tuple[CounterValue, ...] = ()
    supplies: tuple[SupplyLevel, ...] = ()
    alerts: tuple[PrinterAlert, ...] = ()
    status: PrinterStatus | None = None
    errors: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, object]:
        return {
            "id": self.id, "ip": self.ip, "taken_at": self.taken_at.isoformat(),
            "kinds": [str(k) for k in self.kinds], "serial": self.serial,
            "counters": [[c.name, c.value, c.unit] for c in self.counters],
            "supplies": [
                [s.index, s.description, s.type, s.colour, s.unit, s.max_capacity, s.level, str(s.state)]
                for s in self.supplies
            ],
            "alerts": [
                [a.index, a.severity, a.group, a.code, a.description, a.training_level]
                for a in self.alerts
            ],
            "status": None if self.status is None else
            [self.status.status, list(self.status.errors), self.status.device_status],
            "errors": list(self.errors),
        }

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> Reading:
        st = d.get("status")
        return cls(
            id=str(d["id"]), ip=str(d["ip"]),
            taken_at=datetime.fromisoformat(str(d["taken_at"])),
            kinds=tuple(ReadingKind(k) for k in d["kinds"]),  # type: ignore[attr-defined]
            serial=None if d.get("serial") is None else str(d["serial"]),
            counters=tuple(CounterValue(n, int(v), u) for n, v, u in d["counters"]),  # type: ignore[attr-defined]
            supplies=tuple(
                SupplyLevel(i, de, t, c, u, m, lv, SupplyState(s))
                for i, de, t, c, u, m, lv, s in d["supplies"]  # type: ignore[attr-defined]
            ),
            alerts=tuple(PrinterAlert(*a) for a in d["alerts"]),  # type: ignore[attr-defined]
            status=None if not st else PrinterStatus(st[0], tuple(st[1]), st[2]),  # type: ignore[index]
            errors=tuple(str(e) for e in d["errors"]),  # type: ignore[attr-defined]
        )


# --- audit ---


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """An event as sealed in the hash-chained audit log (schema ``schema_version``).

    ``actor``/``source_ip``/``personal`` are the clear personal values when
    known (``None`` once erased); the chain commits only to salted hashes.
    """

    seq: int
    at: datetime
    schema_version: int
    type: str
    outcome: str
    prev_hash: str
    hash: str
    dealer_id: str | None = None
    customer_id: str | None = None
    device_id: str | None = None
    session_id: str | None = None
    actor: str | None = None
    source_ip: str | None = None
    details: dict[str, object] = field(default_factory=dict)
    personal: dict[str, str] = field(default_factory=dict)


# --- fleet ---


@dataclass(frozen=True, slots=True)
class CurrentSupply:
    """The newest known level of one supply of a device."""

    device_id: DeviceId
    supply: SupplyLevel
    taken_at: datetime


@dataclass(frozen=True, slots=True)
class DeviceAlert:
    """A printer alert as tracked by the cloud: open while ``cleared_at`` is None."""

    id: int
    device_id: DeviceId
    alert: PrinterAlert
    raised_at: datetime
    last_seen_at: datetime
    cleared_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class FleetDevice:
    """One device of a tenant's fleet with its current monitoring state."""

    device: Device
    customer_id: CustomerId
    customer_name: str
    site_name: str
    agent_online: bool
    last_reading_at: datetime | None = None
    page_count: int | None = None
    printer_status: str | None = None
    device_status: str | None = None
    error_state: tuple[str, ...] = ()
    open_alerts: int = 0
    lowest_supply: SupplyLevel | None = None
