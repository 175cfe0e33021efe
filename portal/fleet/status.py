"""A printer's state in words a person can act on (pure).

Built from what the agent last reported - hrDeviceStatus, hrPrinterStatus,
hrPrinterDetectedErrorState - and from whether that report is current (the
site's agent online, a reading received). Levels: ``ok``, ``warning``,
``error``, ``unknown``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from printgate.domain import FleetDevice, SupplyLevel, SupplyState
from printgate.fleet_alerts import ERROR_STATES, is_waste_container

Level = Literal["ok", "warning", "error", "unknown"]

DEVICE_STATUS: dict[str, tuple[Level, str]] = {  # hrDeviceStatus
    "running": ("ok", "Running"),
    "warning": ("warning", "Needs attention"),
    "testing": ("warning", "Testing"),
    "down": ("error", "Down"),
    "unknown": ("unknown", "Status unknown"),
}
PRINTER_STATUS = {  # hrPrinterStatus
    "idle": "idle", "printing": "printing", "warmup": "warming up", "other": "", "unknown": "",
}
SEVERITY_WORDS = {
    "critical": "Critical", "warning": "Warning", "warningBinaryChangeEvent": "Warning", "other": "Notice",
}
ALERT_CODE_WORDS = {
    "coverOpen": "cover open", "coverClosed": "cover closed", "interlockOpen": "interlock open",
    "jam": "paper jam", "subunitMissing": "part missing", "subunitLifeAlmostOver": "part near end of life",
    "subunitLifeOver": "part at end of life", "subunitAlmostEmpty": "almost empty", "subunitEmpty": "empty",
    "subunitAlmostFull": "almost full", "subunitFull": "full", "subunitNearLimit": "near its limit",
    "subunitAtLimit": "at its limit", "subunitOpened": "opened", "subunitClosed": "closed",
    "subunitTurnedOn": "turned on", "subunitTurnedOff": "turned off", "subunitOffline": "offline",
    "subunitPowerSaver": "power saver", "subunitWarmingUp": "warming up", "subunitAdded": "added",
    "subunitRemoved": "removed", "subunitResourceAdded": "resource added",
    "subunitResourceRemoved": "resource removed", "subunitRecoverableFailure": "recoverable failure",
    "subunitUnrecoverableFailure": "failure (service needed)",
    "subunitRecoverableStorageError": "recoverable storage error",
    "subunitUnrecoverableStorageError": "storage failure (service needed)",
    "subunitMotorFailure": "motor failure", "subunitMemoryExhausted": "memory full",
    "subunitUnderTemperature": "too cold", "subunitOverTemperature": "too hot",
    "subunitTimingFailure": "timing failure", "subunitThermistorFailure": "thermistor failure",
    "doorOpen": "door open", "doorClosed": "door closed", "powerUp": "powered up", "powerDown": "powered down",
    "printerNMSReset": "reset by management", "printerManualReset": "reset by hand",
    "printerReadyToPrint": "ready to print", "inputMediaTrayMissing": "input tray missing",
    "inputMediaSupplyLow": "paper low", "inputMediaSupplyEmpty": "out of paper",
    "outputMediaTrayMissing": "output tray missing", "outputMediaTrayAlmostFull": "output tray almost full",
    "outputMediaTrayFull": "output tray full", "markerTonerEmpty": "toner empty",
    "markerInkEmpty": "ink empty", "markerTonerAlmostEmpty": "toner almost empty",
    "markerInkAlmostEmpty": "ink almost empty", "markerWasteTonerReceptacleAlmostFull": "waste toner box almost full",
    "markerWasteTonerReceptacleFull": "waste toner box full", "markerWasteInkReceptacleAlmostFull":
    "waste ink box almost full", "markerWasteInkReceptacleFull": "waste ink box full",
    "markerFuserUnderTemperature": "fuser too cold", "markerFuserOverTemperature": "fuser too hot",
    "markerOpcLifeAlmostOver": "drum near end of life", "markerOpcLifeOver": "drum at end of life",
    "markerDeveloperAlmostEmpty": "developer almost empty", "markerDeveloperEmpty": "developer empty",
    "mediaPathMediaTrayMissing": "tray missing", "mediaPathMediaTrayAlmostFull": "tray almost full",
    "mediaPathMediaTrayFull": "tray full", "supplyLow": "supply low", "supplyEmpty": "supply empty",
}


def words(camel: str) -> str:
    """``serviceRequested`` -> ``service requested`` for codes without a better phrase."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", camel).lower()


def alert_code_words(code: str) -> str:
    if code in ERROR_STATES:
        return ERROR_STATES[code][1]
    return ALERT_CODE_WORDS.get(code) or words(code)


@dataclass(frozen=True, slots=True)
class StatusWords:
    level: Level
    text: str


def status_of(f: FleetDevice) -> StatusWords:
    """The device's state in words, from its last report and whether that report is current."""
    if f.last_reading_at is None and f.device_status is None and f.printer_status is None:
        why = "the site's agent is offline" if not f.agent_online else "no status reading received yet"
        return StatusWords("unknown", f"Unknown: {why}")
    level: Level
    level, head = DEVICE_STATUS.get(f.device_status or "unknown", ("unknown", "Status unknown"))
    activity = PRINTER_STATUS.get(f.printer_status or "", "")
    problems = [ERROR_STATES.get(e, ("warning", words(e))) for e in f.error_state]
    if any(sev == "critical" for sev, _ in problems):
        level = "error"
    elif problems and level in ("ok", "unknown"):
        level = "warning"
    if head == "Status unknown" and activity:
        head, level = activity.capitalize(), ("ok" if level == "unknown" else level)
        activity = ""
    alert = _worst_alert_words(f)
    if alert is not None:  # the status reflects the worst open alert and names it
        severity = alert[0]
        if severity == "critical":
            level = "error"
        elif level in ("ok", "unknown"):
            level = "warning"
        if head in ("Running", "Status unknown") and level != "ok":
            head = "Needs attention"
    parts = [head + (f", {activity}" if activity else "")]
    if problems:
        parts.append(", ".join(text for _, text in problems))
    elif alert is not None:
        parts.append(alert[1])
    elif level in ("warning", "error"):  # the printer says so, but gives no reason over SNMP
        parts.append("the printer gives no reason over SNMP (no error state, no alert); see its web page")
    text = ": ".join(parts)
    if not f.agent_online:
        return StatusWords("unknown", f"{text} (last reported; the site's agent is offline)")
    return StatusWords(level, text)


def _worst_alert_words(f: FleetDevice) -> tuple[str, str] | None:
    """(severity, words) of the worst open alert, with how many more are open."""
    if f.worst_alert is None:
        return None
    severity, code, description = f.worst_alert
    text = f"{SEVERITY_WORDS.get(severity, 'Notice').lower()} alert: {description or alert_code_words(code)}"
    if f.open_alerts > 1:
        text += f" (+{f.open_alerts - 1} more open alert{'s' if f.open_alerts > 2 else ''})"
    return severity, text


LEVEL_NOTES = {
    SupplyState.SOME_REMAINING: "the printer reports only that some is left, not how much",
    SupplyState.UNKNOWN: "the printer does not report this level",
    SupplyState.OTHER: "the printer reports a level outside the standard scale",
}


def level_note(s: SupplyLevel) -> str:
    """Why a level has no percentage, or what a low number means for a waste container."""
    if s.state is not SupplyState.KNOWN:
        return LEVEL_NOTES[s.state]
    if s.percent is None:
        return "no maximum capacity reported, so no percentage"
    if is_waste_container(s):
        return "waste container: fills up as the printer works"
    return ""


def colour_note(s: SupplyLevel) -> str:
    return "" if s.colour else "the printer names no colour for this supply"
