"""Printer monitoring: SNMP credentials, discovery results, readings."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime

from printgate.domain.devices import DeviceIdentity


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
