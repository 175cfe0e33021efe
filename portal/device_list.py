"""The technician's device list: search, filters (customer, site, status, alerts) and grouping
over the fleet's devices with their status, alerts and lowest supply. Pure: the store selects,
orders and pages in SQL (``printgate.store.device_list``, from ``DeviceFilter.where``); this
module arranges one page into groups. ``DeviceFilter.matches`` and ``device_groups`` are the
definition of what the list selects and in which order (the tests hold the SQL to them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from portal.fleet.status import StatusWords, status_of
from portal.forms import one_of
from portal.schemas.fleet import level_text
from printgate.domain import FleetDevice
from printgate.store.device_list import DeviceChoices, DeviceListWhere

Grouping = Literal["customer", "site", "none"]
STATUS_CHOICES = {"ok": "OK", "warning": "Warning", "error": "Error", "unknown": "Unknown / offline"}
ALERT_CHOICES = {"open": "with open alerts", "none": "without alerts"}
GROUPINGS: dict[str, str] = {"customer": "Customer", "site": "Customer and site", "none": "No grouping"}
LOW_SUPPLY_PERCENT = 15.0


@dataclass(frozen=True, slots=True)
class DeviceFilter:
    """What the filter form asks for (unknown values are ignored, never an error)."""

    q: str = ""
    customer: str = ""
    site: str = ""
    status: str = ""
    alert: str = ""
    group: Grouping = "customer"

    @classmethod
    def of(cls, q: str = "", customer: str = "", site: str = "", status: str = "", alert: str = "",
           group: str = "customer") -> DeviceFilter:
        return cls(q=q.strip()[:100], customer=customer, site=site, status=one_of(status, STATUS_CHOICES),
                   alert=one_of(alert, ALERT_CHOICES),
                   group=one_of(group, GROUPINGS, "customer"))  # type: ignore[arg-type]

    @property
    def active(self) -> bool:
        return bool(self.q or self.customer or self.site or self.status or self.alert)

    def where(self) -> DeviceListWhere:
        """The same selection and order for the store's query."""
        return DeviceListWhere(words=tuple(self.q.lower().split()), customer_id=self.customer, site_id=self.site,
                               status=self.status, alert=self.alert, group=self.group)

    def matches(self, entry: DeviceEntry) -> bool:
        f = entry.fleet
        if self.customer and f.customer_id != self.customer:
            return False
        if self.site and f.device.site_id != self.site:
            return False
        if self.status and entry.status.level != self.status:
            return False
        if (self.alert == "open" and not f.open_alerts) or (self.alert == "none" and f.open_alerts):
            return False
        if self.q:
            words = self.q.lower().split()
            return all(any(w in field for field in entry.search_text) for w in words)
        return True


@dataclass(frozen=True, slots=True)
class DeviceEntry:
    fleet: FleetDevice
    status: StatusWords
    supply: str | None  # "Black toner: 12 %"
    supply_low: bool

    @classmethod
    def of(cls, f: FleetDevice) -> DeviceEntry:
        s = f.lowest_supply
        supply = f"{s.description or s.type}: {level_text(s)}" if s else None
        low = s is not None and s.percent is not None and s.percent <= LOW_SUPPLY_PERCENT
        return cls(f, status_of(f), supply, low)

    @property
    def name(self) -> str:
        d = self.fleet.device
        return d.name or d.identity.describe()

    @property
    def model(self) -> str | None:
        """The model when it says more than the name (not repeated)."""
        model = self.fleet.device.identity.model
        return model if model and model.lower() not in self.name.lower() else None

    @property
    def search_text(self) -> tuple[str, ...]:
        d = self.fleet.device
        return tuple(x.lower() for x in (self.name, d.identity.model or "", d.identity.serial or "", d.ip,
                                         self.fleet.customer_name, self.fleet.site_name) if x)


@dataclass(frozen=True, slots=True)
class DeviceGroup:
    title: str
    entries: tuple[DeviceEntry, ...]

    @property
    def alerts(self) -> int:
        return sum(1 for e in self.entries if e.fleet.open_alerts)


@dataclass(frozen=True, slots=True)
class Choice:
    value: str
    label: str


def _title(f: FleetDevice, group: Grouping) -> str:
    return {"customer": f.customer_name, "site": f"{f.customer_name} · {f.site_name}", "none": ""}[group]


def device_groups(devices: list[FleetDevice], flt: DeviceFilter) -> list[DeviceGroup]:
    """The devices ``flt`` selects, grouped: ``devices`` in the order customer, name (as
    ``fleet_devices`` gives them); by customer (or customer, then site, by name) and within a
    group by the shown name, case-insensitively; without grouping by the shown name."""
    entries = [e for e in map(DeviceEntry.of, devices) if flt.matches(e)]
    if flt.group == "site":  # the sites of a customer by name (stable: the customers' order kept)
        rank: dict[str, int] = {}
        for e in entries:
            rank.setdefault(e.fleet.customer_name, len(rank))
        entries.sort(key=lambda e: (rank[e.fleet.customer_name], e.fleet.site_name))
    groups: dict[str, list[DeviceEntry]] = {}
    for e in entries:
        groups.setdefault(_title(e.fleet, flt.group), []).append(e)
    return [DeviceGroup(t, tuple(sorted(e, key=lambda x: x.name.lower()))) for t, e in groups.items()]


def page_groups(devices: list[FleetDevice], group: Grouping) -> list[DeviceGroup]:
    """One page of the list (in the list's order) in its groups: a group cut by the page keeps
    its title on both pages, with the count of its devices on this page."""
    out: list[tuple[str, list[DeviceEntry]]] = []
    for f in devices:
        title = _title(f, group)
        if not out or out[-1][0] != title:
            out.append((title, []))
        out[-1][1].append(DeviceEntry.of(f))
    return [DeviceGroup(t, tuple(e)) for t, e in out]


def customer_choices(choices: DeviceChoices) -> list[Choice]:
    return sorted((Choice(i, name) for i, name in choices.customers), key=lambda c: c.label.lower())


def site_choices(choices: DeviceChoices) -> list[Choice]:
    return sorted((Choice(i, f"{customer} · {site}") for i, customer, site in choices.sites),
                  key=lambda c: c.label.lower())
