"""Output types of the fleet API, separate from the store's rows and the
domain types (only what a tenant's user may see)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from portal.fleet.forecast import forecast_text
from portal.fleet.status import (
    LEVEL_NOTES,
    SEVERITY_WORDS,
    alert_code_words,
    colour_note,
    level_note,
    status_of,
)
from portal.fleet.supply_words import supply_kind_words
from printgate.domain import (
    CounterValue,
    DeviceAlert,
    FleetDevice,
    PrinterAlert,
    Reading,
    SupplyLevel,
    SupplyState,
)
from printgate.fleet_alerts import is_waste_container

SUPPLY_WORDS = {
    SupplyState.OTHER: "other",
    SupplyState.UNKNOWN: "unknown",
    SupplyState.SOME_REMAINING: "some remaining",
}


def level_text(s: SupplyLevel) -> str:
    """How a level reads to a person: RFC 3805 special values as words."""
    if s.state is not SupplyState.KNOWN:
        return SUPPLY_WORDS[s.state]
    if s.percent is not None:
        return f"{s.percent:g} %"
    if s.level is None:
        return "unknown"
    return f"{s.level} {s.unit} (capacity unknown)"


class SupplyPublic(BaseModel):
    index: int
    description: str
    type: str
    colour: str | None
    unit: str
    level: int | None = Field(description="raw level; null for RFC 3805 special values (see state)")
    max_capacity: int | None
    percent: float | None
    state: Literal["known", "other", "unknown", "some_remaining"]
    level_text: str = Field(description="for people: '42 %', 'some remaining', 'unknown', ...")
    level_note: str = Field(default="", description="why there is no percentage, or what it means")
    colour_note: str = Field(default="", description="why there is no colour")
    type_text: str = Field(default="", description="the kind in words ('toner cartridge'); empty when unknown")
    waste_container: bool = Field(default=False, description="fills up; never 'low', never the lowest supply")
    taken_at: datetime | None = None
    empty_in_days: float | None = Field(default=None, description="linear run-out forecast")
    forecast: str = Field(default="", description="the forecast, or why there is none yet and what it needs")

    @classmethod
    def of(cls, s: SupplyLevel, *, taken_at: datetime | None = None,
           empty_in_days: float | None = None, no_forecast: str = "") -> SupplyPublic:
        waste = is_waste_container(s)
        forecast = forecast_text(empty_in_days) or (
            "no forecast: waste containers fill up" if waste
            else f"no forecast: {LEVEL_NOTES[s.state]}" if s.state is not SupplyState.KNOWN else no_forecast)
        return cls(index=s.index, description=s.description, type=s.type, colour=s.colour, unit=s.unit,
                   level=s.level, max_capacity=s.max_capacity, percent=s.percent,
                   state=s.state.value,
                   level_text=level_text(s), level_note=level_note(s), colour_note=colour_note(s),
                   type_text=supply_kind_words(s.type),
                   waste_container=waste, taken_at=taken_at, empty_in_days=empty_in_days,
                   forecast=forecast)


class PrinterAlertPublic(BaseModel):
    index: int
    severity: str
    group: str
    code: str
    description: str
    training_level: str | None

    @classmethod
    def of(cls, a: PrinterAlert) -> PrinterAlertPublic:
        return cls(index=a.index, severity=a.severity, group=a.group, code=a.code,
                   description=a.description, training_level=a.training_level)


class AlertPublic(PrinterAlertPublic):
    id: int
    severity_text: str = Field(description="Critical, Warning or Notice")
    what: str = Field(description="the alert in words")
    raised_at: datetime = Field(description="first seen")
    last_seen_at: datetime
    cleared_at: datetime | None

    @classmethod
    def of_tracked(cls, a: DeviceAlert) -> AlertPublic:
        base = PrinterAlertPublic.of(a.alert).model_dump()
        what = a.alert.description or alert_code_words(a.alert.code)
        return cls(**base, id=a.id, severity_text=SEVERITY_WORDS.get(a.alert.severity, "Notice"), what=what,
                   raised_at=a.raised_at, last_seen_at=a.last_seen_at, cleared_at=a.cleared_at)


class AlertsPublic(BaseModel):
    open: list[AlertPublic]
    recently_cleared: list[AlertPublic]


class FleetDevicePublic(BaseModel):
    id: str
    name: str
    customer_id: str
    customer: str
    site: str
    ip: str
    model: str | None
    serial: str | None
    vendor: str | None
    agent_online: bool
    last_reading_at: datetime | None
    page_count: int | None
    printer_status: str | None
    device_status: str | None
    error_state: list[str]
    status_level: Literal["ok", "warning", "error", "unknown"] = Field(description="for colour")
    status_text: str = Field(description="the device's state in words, e.g. 'Needs attention: toner low'")
    open_alerts: int
    lowest_supply: SupplyPublic | None

    @classmethod
    def of(cls, f: FleetDevice) -> FleetDevicePublic:
        d = f.device
        status = status_of(f)
        return cls(
            id=d.id, name=d.name or d.identity.describe(), customer_id=f.customer_id, customer=f.customer_name,
            site=f.site_name, ip=d.ip, model=d.identity.model, serial=d.identity.serial,
            vendor=d.identity.vendor, agent_online=f.agent_online, last_reading_at=f.last_reading_at,
            page_count=f.page_count, printer_status=f.printer_status, device_status=f.device_status,
            error_state=list(f.error_state), status_level=status.level, status_text=status.text,
            open_alerts=f.open_alerts,
            lowest_supply=SupplyPublic.of(f.lowest_supply) if f.lowest_supply else None,
        )


class FleetDeviceDetail(FleetDevicePublic):
    location: str | None
    sys_name: str | None
    previous_model: str | None = Field(description="the model text before its last change (firmware update)")
    model_changed_at: datetime | None
    web_page: str | None = Field(description="where the device's web page answers (e.g. 'https, port 443'); "
                                             "null: none of the agent's ews_candidates answered")
    supplies: list[SupplyPublic]
    alerts: list[AlertPublic]


def device_detail(f: FleetDevice, supplies: list[SupplyPublic], alerts: list[AlertPublic]) -> FleetDeviceDetail:
    return FleetDeviceDetail(**FleetDevicePublic.of(f).model_dump(), location=f.device.identity.location,
                             sys_name=f.device.identity.sys_name, previous_model=f.device.previous_model,
                             model_changed_at=f.device.model_changed_at, supplies=supplies, alerts=alerts,
                             web_page=(f"{f.device.ews_scheme}, port {f.device.ews_port}"
                                       if f.device.ews_port > 0 else None))


class CounterPublic(BaseModel):
    name: str
    value: int
    unit: str

    @classmethod
    def of(cls, c: CounterValue) -> CounterPublic:
        return cls(name=c.name, value=c.value, unit=c.unit)


class PrinterStatusPublic(BaseModel):
    status: str | None
    errors: list[str]
    device_status: str | None


class ReadingPublic(BaseModel):
    id: str
    taken_at: datetime
    kinds: list[str]
    counters: list[CounterPublic]
    supplies: list[SupplyPublic]
    alerts: list[PrinterAlertPublic]
    status: PrinterStatusPublic | None
    errors: list[str]

    @classmethod
    def of(cls, r: Reading) -> ReadingPublic:
        return cls(
            id=r.id, taken_at=r.taken_at, kinds=[str(k) for k in r.kinds],
            counters=[CounterPublic.of(c) for c in r.counters],
            supplies=[SupplyPublic.of(s) for s in r.supplies],
            alerts=[PrinterAlertPublic.of(a) for a in r.alerts],
            status=None if r.status is None else PrinterStatusPublic(
                status=r.status.status, errors=list(r.status.errors), device_status=r.status.device_status),
            errors=list(r.errors),
        )
