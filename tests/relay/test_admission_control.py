"""The relay's admission rules and refusal tally, on plain numbers (the floods are in test_admission)."""

from __future__ import annotations

from gateway.relay.admission import AdmissionControl, AdmissionLimits

LIMITS = AdmissionLimits(max_unauthenticated=4, max_unauthenticated_per_source=2, connections_per_source=3,
                         source_window_s=10.0)


def admit(control: AdmissionControl, source: str, now: float, *, pending: int = 0, from_source: int = 0,
          firewall: bool = True) -> str | None:
    return control.check(source, now, firewall_allows=firewall, unauthenticated=pending,
                         unauthenticated_from_source=from_source)


def test_each_bound_refuses_with_its_own_reason() -> None:
    control = AdmissionControl(LIMITS)
    assert admit(control, "10.0.0.1", 0, firewall=False) == "no_firewall_exception"
    assert admit(control, "10.0.0.2", 0, from_source=2) == "preauth_cap_per_source"
    assert admit(control, "10.0.0.3", 0, pending=4) == "preauth_cap"
    assert [admit(control, "10.0.0.4", 0) for _ in range(4)] == [None, None, None, "rate"]


def test_a_window_that_rolls_over_before_collection_is_still_reported() -> None:
    control = AdmissionControl(LIMITS)
    for _ in range(5):
        admit(control, "10.0.0.4", 0)
    assert control.closed_windows(5) == []  # still open
    assert admit(control, "10.0.0.4", 11) is None  # a new window: the rate starts again
    (ended,) = control.closed_windows(12)
    assert (ended.started_at, ended.admitted, dict(ended.refused)) == (0, 3, {"rate": 2})
    assert control.closed_windows(30) == []  # the new window refused nothing: no record


def test_authenticated_connections_give_their_rate_slot_back() -> None:
    control = AdmissionControl(LIMITS)
    for _ in range(3):
        assert admit(control, "10.0.0.5", 0) is None
        control.authenticated("10.0.0.5")
    assert [admit(control, "10.0.0.5", 1) for _ in range(4)] == [None, None, None, "rate"]
    (window,) = control.drain()
    assert (window.admitted, window.authenticated, window.refused_total) == (6, 3, 1)
