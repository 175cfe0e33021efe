"""The cloud's view of a tenant's fleet: current supplies, alerts, device state."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from printgate.domain.devices import Device
from printgate.domain.ids import CustomerId, DeviceId
from printgate.domain.monitoring import PrinterAlert, SupplyLevel


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
    # the most severe open alert (critical first, then newest) as (severity, code, description)
    worst_alert: tuple[str, str, str] | None = None
