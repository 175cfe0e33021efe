"""The remote-access mode of a device's site (or customer): open, approval, never, auto-approve
while an alert is open, ticket required (issue 20). Pure: the caller passes the device's open alerts,
the session's reason, a customer admin's approval and ``now``."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from policy import reasons as R
from printgate.domain import (
    AlertSeverity,
    DeviceAlert,
    Reason,
    ReasonKind,
    RemoteAccessMode,
    SessionReason,
)

# prtAlertSeverityLevel names (RFC 3805) by rank; anything else ranks below warning
SEVERITY_RANK = {"critical": 3, "warning": 2, "warningBinaryChangeEvent": 2}
_THRESHOLD_RANK = {AlertSeverity.WARNING: 2, AlertSeverity.CRITICAL: 3}


@dataclass(frozen=True, slots=True)
class OpenAlert:
    """An alert open on the device now (``device_alerts`` row without ``cleared_at``)."""

    id: int
    code: str
    severity: str
    description: str
    raised_at: datetime


def open_alerts_of(alerts: Iterable[DeviceAlert]) -> tuple[OpenAlert, ...]:
    """The store's open alerts of a device as the policy takes them (cleared ones are left out)."""
    return tuple(OpenAlert(a.id, a.alert.code, a.alert.severity, a.alert.description, a.raised_at)
                 for a in alerts if a.cleared_at is None)


@dataclass(frozen=True, slots=True)
class AccessOutcome:
    allows: tuple[Reason, ...] = ()
    denies: tuple[Reason, ...] = ()
    approval: bool = False  # a customer admin's approval would cure the refusal
    auto_alert: OpenAlert | None = field(default=None)  # the alert that auto-approved it


def qualifying_alerts(open_alerts: tuple[OpenAlert, ...], min_severity: AlertSeverity) -> list[OpenAlert]:
    """The open alerts at least ``min_severity``: most severe first, then the oldest."""
    threshold = _THRESHOLD_RANK[min_severity]
    found = [a for a in open_alerts if SEVERITY_RANK.get(a.severity, 0) >= threshold]
    return sorted(found, key=lambda a: (-SEVERITY_RANK.get(a.severity, 0), a.raised_at, a.id))


def _alert_allows(alert: OpenAlert) -> Reason:
    what = alert.description or alert.code or "printer alert"
    return Reason("customer.alert_open",
                  f"auto-approved: alert '{what}' ({alert.severity}) open since "
                  f"{alert.raised_at:%Y-%m-%d %H:%M} UTC")


def _no_alert(min_severity: AlertSeverity) -> Reason:
    return Reason("customer.no_open_alert",
                  f"approval required: no open alert of severity ≥ {min_severity.value} on the device; "
                  "request approval from the refusal page")


def _approved(approved_until: datetime | None, now: datetime) -> bool:
    return approved_until is not None and now < approved_until


def access_check(
    mode: RemoteAccessMode, *, now: datetime, approved_until: datetime | None = None,
    min_severity: AlertSeverity = AlertSeverity.CRITICAL, open_alerts: tuple[OpenAlert, ...] = (),
    reason: SessionReason | None = None,
) -> AccessOutcome:
    """What the mode in force says about opening the device's web page now."""
    if mode is RemoteAccessMode.NEVER:
        return AccessOutcome(denies=(R.CUSTOMER_NEVER,))
    if mode is RemoteAccessMode.OPEN:
        return AccessOutcome(allows=(R.CUSTOMER_OPEN,))
    if mode is RemoteAccessMode.APPROVAL_REQUIRED:
        if _approved(approved_until, now):
            return AccessOutcome(allows=(R.CUSTOMER_APPROVED,))
        return AccessOutcome(denies=(R.CUSTOMER_APPROVAL_REQUIRED,), approval=True)
    if mode is RemoteAccessMode.ALERT_AUTO:
        candidates = qualifying_alerts(open_alerts, min_severity)
        if candidates:
            # the session's own alert names the grant when it qualifies
            mine = [a for a in candidates
                    if reason is not None and reason.kind is ReasonKind.ALERT and a.id == reason.alert_id]
            chosen = (mine or candidates)[0]
            return AccessOutcome(allows=(_alert_allows(chosen),), auto_alert=chosen)
        if _approved(approved_until, now):
            return AccessOutcome(allows=(R.CUSTOMER_APPROVED,))
        return AccessOutcome(denies=(_no_alert(min_severity),), approval=True)
    if mode is RemoteAccessMode.TICKET:
        if reason is not None and reason.kind is ReasonKind.TICKET and reason.text:
            return AccessOutcome(allows=(Reason("customer.ticket_given",
                                                f"a ticket reference was given: {reason.text}"),))
        return AccessOutcome(denies=(R.CUSTOMER_TICKET_REQUIRED,))
    return AccessOutcome(denies=(Reason("customer.mode_unknown",
                                        f"unknown remote-access mode {mode!r}: access is refused"),))
