"""Alerts people can act on, derived from readings (pure).

Besides the printer's own prtAlertTable entries, the cloud raises:
- one alert per hrPrinterDetectedErrorState condition (toner empty, jam, ...),
  with a severity a person would give it;
- one alert per supply at or below the tenant's thresholds (default: warning
  at 15 %, critical at 5 %); waste containers fill up instead of running out,
  so they never raise a "low" alert and are never the "lowest supply".

Each derived alert has a stable key; the store raises it when first seen,
updates its last-seen time while it holds and clears it when a newer reading
of the same kind no longer has it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from printgate.domain import PrinterAlert, SupplyLevel

DEFAULT_WARNING_PERCENT = 15
DEFAULT_CRITICAL_PERCENT = 5

SUPPLY_SOURCE = "supply/"
STATE_SOURCE = "state/"
SUPPLY_GROUP = "supplyThreshold"
STATE_GROUP = "detectedErrorState"

# hrPrinterDetectedErrorState bits: (severity, words)
ERROR_STATES: dict[str, tuple[str, str]] = {
    "lowPaper": ("warning", "paper low"),
    "noPaper": ("critical", "out of paper"),
    "lowToner": ("warning", "toner low"),
    "noToner": ("critical", "toner empty"),
    "doorOpen": ("critical", "a door is open"),
    "jammed": ("critical", "paper jam"),
    "offline": ("critical", "offline"),
    "serviceRequested": ("warning", "service requested"),
    "inputTrayMissing": ("critical", "an input tray is missing"),
    "outputTrayMissing": ("critical", "an output tray is missing"),
    "markerSupplyMissing": ("critical", "a toner or ink supply is missing"),
    "outputNearFull": ("warning", "output tray nearly full"),
    "outputFull": ("critical", "output tray full"),
    "inputTrayEmpty": ("warning", "an input tray is empty"),
    "overduePreventMaint": ("warning", "preventive maintenance overdue"),
}


@dataclass(frozen=True, slots=True)
class SupplyThresholds:
    """Percent levels at or below which a supply raises a warning / a critical alert."""

    warning_percent: int = DEFAULT_WARNING_PERCENT
    critical_percent: int = DEFAULT_CRITICAL_PERCENT

    def __post_init__(self) -> None:
        if not 0 <= self.critical_percent <= self.warning_percent <= 100:
            raise ValueError("thresholds need 0 <= critical <= warning <= 100 (percent)")


def is_waste_container(s: SupplyLevel) -> bool:
    """A receptacle that fills up (waste toner/ink/... box): a low level there is good news."""
    return s.type.lower().startswith("waste") or "waste" in s.description.lower()


def consumables(supplies: Iterable[SupplyLevel]) -> list[SupplyLevel]:
    return [s for s in supplies if not is_waste_container(s)]


def supply_alerts(supplies: Iterable[SupplyLevel], thresholds: SupplyThresholds) -> dict[str, PrinterAlert]:
    """Alert key -> alert for each consumable supply at or below a threshold."""
    out: dict[str, PrinterAlert] = {}
    for s in consumables(supplies):
        pct = s.percent
        if pct is None:
            continue
        if pct <= thresholds.critical_percent:
            severity, limit = "critical", thresholds.critical_percent
        elif pct <= thresholds.warning_percent:
            severity, limit = "warning", thresholds.warning_percent
        else:
            continue
        name = s.description or f"supply {s.index}"
        out[f"{SUPPLY_SOURCE}{s.index}/{severity}"] = PrinterAlert(
            index=s.index, severity=severity, group=SUPPLY_GROUP,
            code="supplyEmpty" if pct == 0 else "supplyLow",
            description=f"{name} at {pct:g} % ({severity} at {limit} % or less)",
        )
    return out


def error_state_alerts(states: Iterable[str]) -> dict[str, PrinterAlert]:
    """Alert key -> alert for each detected error condition the printer reports."""
    out: dict[str, PrinterAlert] = {}
    for state in states:
        severity, words = ERROR_STATES.get(state, ("warning", state))
        out[f"{STATE_SOURCE}{state}"] = PrinterAlert(
            index=0, severity=severity, group=STATE_GROUP, code=state, description=words[:1].upper() + words[1:],
        )
    return out
