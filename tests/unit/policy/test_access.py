"""The per-site remote-access modes (issue 20): alert_auto and ticket, alone and through the engine."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from policy import (
    Action,
    OpenAlert,
    access_check,
    default_ruleset,
    evaluate,
    load_policy,
    qualifying_alerts,
)
from printgate.domain import AlertSeverity, RemoteAccessMode, SessionReason
from printgate.errors import SessionReasonInvalid
from tests.unit.policy.conftest import NOW, make_context, make_resource, make_subject

DEFAULT = load_policy(default_ruleset("d1"))
TONER = OpenAlert(7, "markerTonerEmpty", "critical", "Toner empty", NOW - timedelta(minutes=30))
DOOR = OpenAlert(8, "coverOpen", "warning", "Front door open", NOW - timedelta(minutes=90))
OTHER = OpenAlert(9, "other", "other", "Something", NOW - timedelta(minutes=5))


def codes(outcome_reasons) -> set[str]:  # type: ignore[no-untyped-def]
    return {r.code for r in outcome_reasons}


def test_alert_auto_allows_with_a_critical_alert_and_names_it() -> None:
    out = access_check(RemoteAccessMode.ALERT_AUTO, now=NOW, open_alerts=(DOOR, TONER),
                       min_severity=AlertSeverity.CRITICAL)
    assert not out.denies and out.auto_alert == TONER
    (reason,) = out.allows
    assert reason.message == "auto-approved: alert 'Toner empty' (critical) open since 2026-11-25 09:30 UTC"


def test_alert_auto_below_the_threshold_requires_approval() -> None:
    out = access_check(RemoteAccessMode.ALERT_AUTO, now=NOW, open_alerts=(DOOR, OTHER),
                       min_severity=AlertSeverity.CRITICAL)
    assert not out.allows and out.approval
    (reason,) = out.denies
    assert reason.code == "customer.no_open_alert"
    assert reason.message.startswith("approval required: no open alert of severity ≥ critical")


def test_alert_auto_with_warning_threshold_takes_warnings_and_prefers_the_sessions_alert() -> None:
    assert [a.id for a in qualifying_alerts((OTHER, DOOR, TONER), AlertSeverity.WARNING)] == [7, 8]
    mine = SessionReason.of_alert(8, code="coverOpen", severity="warning", description="Front door open",
                                  raised_at=DOOR.raised_at)
    out = access_check(RemoteAccessMode.ALERT_AUTO, now=NOW, open_alerts=(TONER, DOOR),
                       min_severity=AlertSeverity.WARNING, reason=mine)
    assert out.auto_alert == DOOR and "Front door open" in out.allows[0].message


def test_alert_auto_without_alert_but_with_an_approval_allows() -> None:
    out = access_check(RemoteAccessMode.ALERT_AUTO, now=NOW, approved_until=NOW + timedelta(minutes=5))
    assert codes(out.allows) == {"customer.approved"} and not out.denies
    expired = access_check(RemoteAccessMode.ALERT_AUTO, now=NOW, approved_until=NOW)
    assert expired.denies and expired.approval


def test_ticket_mode_requires_a_ticket_reference() -> None:
    assert codes(access_check(RemoteAccessMode.TICKET, now=NOW).denies) == {"customer.ticket_required"}
    text = SessionReason.free_text("printer is slow")
    assert access_check(RemoteAccessMode.TICKET, now=NOW, reason=text).denies
    out = access_check(RemoteAccessMode.TICKET, now=NOW, reason=SessionReason.ticket("T-1234"))
    assert not out.denies and "T-1234" in out.allows[0].message
    # an approval does not replace the ticket
    assert access_check(RemoteAccessMode.TICKET, now=NOW, approved_until=NOW + timedelta(hours=1)).denies


@pytest.mark.parametrize("bad", ["", "   ", "T 12", "<script>", "-x", "x" * 65])
def test_bad_ticket_references_are_refused_with_a_clear_error(bad: str) -> None:
    with pytest.raises(SessionReasonInvalid, match="ticket"):
        SessionReason.ticket(bad)


def test_free_text_is_cleaned_and_bounded() -> None:
    assert SessionReason.free_text("  paper\njam\x00 in\ttray 2 ").text == "paper jam in tray 2"
    with pytest.raises(SessionReasonInvalid, match="at most 500"):
        SessionReason.free_text("x" * 501)
    with pytest.raises(SessionReasonInvalid, match="empty"):
        SessionReason.free_text("\x00\u200b")


def test_reason_round_trips_through_its_dict() -> None:
    alert = SessionReason.of_alert(7, code="c", severity="critical", description="Toner empty",
                                   raised_at=TONER.raised_at)
    for reason in (alert, SessionReason.ticket("T-1"), SessionReason.free_text("why")):
        assert SessionReason.from_dict(reason.to_dict()) == reason


def test_the_engine_uses_the_mode_in_force() -> None:
    res = replace(make_resource(mode=RemoteAccessMode.ALERT_AUTO), open_alerts=(TONER,))
    d = evaluate(DEFAULT, make_subject(), Action.DWA_OPEN, res, make_context())
    assert d.allow and "customer.alert_open" in {r.code for r in d.reasons}
    quiet = replace(res, open_alerts=(DOOR,))
    d = evaluate(DEFAULT, make_subject(), Action.DWA_OPEN, quiet, make_context())
    assert not d.allow and d.obligations.requires_customer_approval
    warn = replace(quiet, alert_min_severity=AlertSeverity.WARNING)
    assert evaluate(DEFAULT, make_subject(), Action.DWA_OPEN, warn, make_context()).allow
    ticket = make_resource(mode=RemoteAccessMode.TICKET)
    assert not evaluate(DEFAULT, make_subject(), Action.DWA_OPEN, ticket, make_context()).allow
    assert evaluate(DEFAULT, make_subject(), Action.DWA_OPEN, ticket,
                    make_context(reason=SessionReason.ticket("T-9"))).allow
