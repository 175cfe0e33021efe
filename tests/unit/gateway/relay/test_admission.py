"""Pre-auth admission of relay connections (gateway/relay/admission.py): caps, per-source rate
windows, the refusal tally handed back per window, and the overflow window for address sprays.

The module is a pure state machine: the relay passes the clock and the handshake counts.
"""

from __future__ import annotations

from gateway.relay.admission import (
    MAX_USERNAMES,
    NO_FIREWALL_EXCEPTION,
    OVERFLOW,
    PREAUTH_CAP,
    PREAUTH_CAP_PER_SOURCE,
    RATE,
    REASONS,
    USERNAME_MAX,
    AdmissionControl,
    AdmissionLimits,
)

LIMITS = AdmissionLimits(max_unauthenticated=10, max_unauthenticated_per_source=3, connections_per_source=4,
                         source_window_s=60.0)


def admit(ac: AdmissionControl, source: str, now: float, *, firewall: bool = True, total: int = 0,
          from_source: int = 0) -> str | None:
    return ac.check(source, now, firewall_allows=firewall, unauthenticated=total,
                    unauthenticated_from_source=from_source)


def test_every_reason_has_a_human_message() -> None:
    assert set(REASONS) == {PREAUTH_CAP, PREAUTH_CAP_PER_SOURCE, RATE, NO_FIREWALL_EXCEPTION}
    assert all(REASONS.values())


def test_global_and_per_source_handshake_caps() -> None:
    ac = AdmissionControl(LIMITS)
    assert admit(ac, "a", 0.0, total=9, from_source=2) is None
    assert admit(ac, "a", 0.0, total=10, from_source=0) == PREAUTH_CAP
    assert admit(ac, "a", 0.0, total=0, from_source=3) == PREAUTH_CAP_PER_SOURCE
    # the per-source cap is named before the global one when both are reached
    assert admit(ac, "b", 0.0, total=10, from_source=3) == PREAUTH_CAP_PER_SOURCE


def test_no_firewall_exception_is_refused_but_rate_comes_first() -> None:
    ac = AdmissionControl(LIMITS)
    assert admit(ac, "a", 0.0, firewall=False) == NO_FIREWALL_EXCEPTION
    for _ in range(LIMITS.connections_per_source):
        assert admit(ac, "b", 0.0) is None
    assert admit(ac, "b", 1.0, firewall=False) == RATE


def test_rate_limits_unauthenticated_connections_per_window_and_resets_in_the_next() -> None:
    ac = AdmissionControl(LIMITS)
    for i in range(LIMITS.connections_per_source):
        assert admit(ac, "a", float(i)) is None
    assert admit(ac, "a", 10.0) == RATE
    assert admit(ac, "other", 10.0) is None  # another source has its own window
    assert admit(ac, "a", 59.9) == RATE
    assert admit(ac, "a", 60.0) is None  # a new window


def test_connections_that_authenticate_do_not_count_towards_the_rate() -> None:
    ac = AdmissionControl(LIMITS)
    for _ in range(20):  # an agent opening many tunnels, each becoming a session's tunnel
        assert admit(ac, "agent", 1.0) is None
        ac.authenticated("agent")
    assert admit(ac, "agent", 1.0) is None


def test_authenticated_never_exceeds_admitted() -> None:
    ac = AdmissionControl(LIMITS)
    assert admit(ac, "a", 0.0) is None
    for _ in range(5):
        ac.authenticated("a")  # more calls than admitted connections
    ac.authenticated("never-seen")  # unknown source: nothing happens
    # one authentication credited (the connection admitted), the extra calls not: a full quota left
    for _ in range(LIMITS.connections_per_source):
        assert admit(ac, "a", 0.0) is None
    assert admit(ac, "a", 0.0) == RATE


def test_first_refusal_is_true_once_per_reason_and_window() -> None:
    ac = AdmissionControl(LIMITS)
    assert not ac.first_refusal("a", PREAUTH_CAP)
    admit(ac, "a", 0.0, total=10)
    assert ac.first_refusal("a", PREAUTH_CAP)
    admit(ac, "a", 0.0, total=10)
    assert not ac.first_refusal("a", PREAUTH_CAP)
    admit(ac, "a", 61.0, total=10)  # next window: first again
    assert ac.first_refusal("a", PREAUTH_CAP)


def test_closed_windows_report_refusals_once_and_drop_admitted_only_windows() -> None:
    ac = AdmissionControl(LIMITS)
    admit(ac, "quiet", 0.0)
    admit(ac, "noisy", 5.0)
    admit(ac, "noisy", 6.0, total=10)
    admit(ac, "noisy", 7.0, total=10)
    admit(ac, "noisy", 8.0, firewall=False)
    assert ac.closed_windows(30.0) == []  # nothing over yet
    closed = ac.closed_windows(65.0)
    assert [w.source for w in closed] == ["noisy"]
    w = closed[0]
    assert (w.started_at, w.admitted, w.refused_total) == (5.0, 1, 3)
    assert w.refused == {PREAUTH_CAP: 2, NO_FIREWALL_EXCEPTION: 1}
    assert ac.closed_windows(1000.0) == []  # handed back once; the quiet window was dropped


def test_a_window_replaced_before_collection_is_still_handed_back() -> None:
    ac = AdmissionControl(LIMITS)
    admit(ac, "a", 0.0, total=10)
    admit(ac, "a", 100.0)  # a new window replaces the ended one
    closed = ac.closed_windows(100.0)
    assert [(w.source, w.started_at, w.refused_total) for w in closed] == [("a", 0.0, 1)]


def test_failed_logins_first_is_audited_at_once_rest_in_aggregate_with_bounded_names() -> None:
    ac = AdmissionControl(LIMITS)
    assert ac.auth_failed("a", "root", 0.0) is True
    assert ac.auth_failed("a", "admin", 1.0) is False
    long_name = "x" * 100
    for i in range(10):
        ac.auth_failed("a", f"{i}{long_name}", 2.0)
    (w,) = ac.drain()
    assert w.auth_failed == 12 and w.worth_auditing and w.refused_total == 0
    assert len(w.usernames) == MAX_USERNAMES
    assert all(len(u) <= USERNAME_MAX for u in w.usernames)
    assert {"root", "admin", "0" + "x" * (USERNAME_MAX - 1)} <= w.usernames


def test_one_failed_login_alone_is_not_worth_an_aggregate_record() -> None:
    ac = AdmissionControl(LIMITS)
    ac.auth_failed("a", "root", 0.0)
    assert ac.closed_windows(61.0) == []


def test_drain_hands_back_open_and_ended_windows_with_refusals_and_empties_the_state() -> None:
    ac = AdmissionControl(LIMITS)
    admit(ac, "a", 0.0, total=10)
    admit(ac, "a", 70.0, total=10)  # the first window ended, uncollected
    admit(ac, "b", 70.0)  # admitted only
    drained = ac.drain()
    assert sorted((w.source, w.started_at) for w in drained) == [("a", 0.0), ("a", 70.0)]
    assert ac.drain() == [] and ac.closed_windows(10_000.0) == []


def test_sources_beyond_max_sources_share_one_overflow_window() -> None:
    ac = AdmissionControl(LIMITS, max_sources=2)
    assert admit(ac, "s1", 0.0) is None
    assert admit(ac, "s2", 0.0) is None
    # a spray of further addresses: counted and rate limited together
    results = [admit(ac, f"spray{i}", 0.0) for i in range(6)]
    assert results == [None] * LIMITS.connections_per_source + [RATE, RATE]
    ac.authenticated("spray0")  # an unknown source falls back to the overflow window
    assert admit(ac, "spray99", 0.0) is None
    (overflow,) = [w for w in ac.drain() if w.source == OVERFLOW]
    assert overflow.refused == {RATE: 2}
    # the overflow window's own list of sources is bounded by max_sources too
    assert len(overflow.sources) == 2 and "spray0" in overflow.sources


def test_a_tracked_source_keeps_its_own_window_when_the_table_is_full() -> None:
    ac = AdmissionControl(LIMITS, max_sources=1)
    admit(ac, "s1", 0.0)
    admit(ac, "s2", 0.0, total=10)  # overflow
    admit(ac, "s1", 1.0, total=10)  # still its own window
    windows = {w.source: w for w in ac.drain()}
    assert set(windows) == {"s1", OVERFLOW}
    assert windows["s1"].admitted == 1 and windows["s1"].refused == {PREAUTH_CAP: 1}
