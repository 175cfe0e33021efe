"""Each rule of the engine, allow and deny, with its reason code."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from policy import Action, default_ruleset, evaluate, load_policy
from printgate.domain import DeviceIdentity, RemoteAccessMode, Role
from tests.unit.policy.conftest import (
    NOW,
    make_context,
    make_device,
    make_resource,
    make_subject,
    make_user,
)

DEFAULT = load_policy(default_ruleset("d1"))


def codes(decision) -> set[str]:  # type: ignore[no-untyped-def]
    return {r.code for r in decision.reasons}


def with_rules(*rules: dict, **top: object):  # type: ignore[no-untyped-def]
    return load_policy({"dealer_id": "d1", "version": 3, "rules": list(rules), **top})


def test_technician_of_owning_dealer_with_fresh_mfa_is_allowed_with_obligations() -> None:
    d = evaluate(DEFAULT, make_subject(), Action.DWA_OPEN, make_resource(), make_context())
    assert d.allow
    assert {"ownership.same_tenant", "role.allowed", "mfa.fresh", "device.ready",
            "customer.open"} <= codes(d)
    assert d.obligations.max_duration_seconds == 30 * 60
    assert d.obligations.idle_timeout_seconds == 10 * 60
    assert "ALLOW" in d.explain()


def test_other_dealer_is_denied_even_with_every_other_fact_fine() -> None:
    d = evaluate(DEFAULT, make_subject(make_user(dealer="d2")), Action.DWA_OPEN,
                 make_resource(), make_context())
    assert not d.allow and "ownership.other_tenant" in codes(d)


def test_policy_of_another_tenant_never_allows() -> None:
    other = load_policy(default_ruleset("d2"))
    d = evaluate(other, make_subject(make_user(dealer="d2")), Action.DWA_OPEN,
                 make_resource(dealer="d1"), make_context())
    assert not d.allow and "ownership.other_tenant" in codes(d)


@pytest.mark.parametrize("role", [Role.VIEWER, Role.AUDITOR, Role.CUSTOMER_ADMIN])
def test_roles_without_dwa_are_refused(role: Role) -> None:
    d = evaluate(DEFAULT, make_subject(make_user(role)), Action.DWA_OPEN, make_resource(),
                 make_context())
    assert not d.allow and "role.not_permitted" in codes(d)


def test_customer_admin_reads_own_customer_devices_but_never_opens_them() -> None:
    user = make_user(Role.CUSTOMER_ADMIN, dealer=None, customer="c1")
    assert evaluate(DEFAULT, make_subject(user), Action.DEVICE_READ, make_resource(), make_context()).allow
    other = make_user(Role.CUSTOMER_ADMIN, dealer=None, customer="c2")
    assert not evaluate(DEFAULT, make_subject(other), Action.DEVICE_READ, make_resource(), make_context()).allow
    opened = evaluate(DEFAULT, make_subject(user), Action.DWA_OPEN, make_resource(), make_context())
    assert not opened.allow and "ownership.other_tenant" in codes(opened)


def test_disabled_user_is_refused() -> None:
    d = evaluate(DEFAULT, make_subject(make_user(disabled=True)), Action.DWA_OPEN, make_resource(),
                 make_context())
    assert not d.allow and "user.disabled" in codes(d)


def test_missing_mfa_requires_step_up() -> None:
    d = evaluate(DEFAULT, make_subject(mfa_age=None), Action.DWA_OPEN, make_resource(), make_context())
    assert not d.allow and "mfa.missing" in codes(d) and d.obligations.step_up_mfa


def test_stale_mfa_requires_step_up_and_says_how_old() -> None:
    d = evaluate(DEFAULT, make_subject(mfa_age=16 * 60), Action.DWA_OPEN, make_resource(), make_context())
    assert not d.allow and d.obligations.step_up_mfa
    (stale,) = [r for r in d.reasons if r.code == "mfa.stale"]
    assert "16 min ago" in stale.message and "15 min" in stale.message


def test_stricter_mfa_rule_for_one_customer() -> None:
    p = with_rules({"kind": "mfa", "id": "m1", "max_age_minutes": 1, "scope": {"customer_id": "c1"}})
    assert not evaluate(p, make_subject(mfa_age=120), Action.DWA_OPEN, make_resource(), make_context()).allow
    assert evaluate(p, make_subject(mfa_age=120), Action.DWA_OPEN, make_resource(customer="c9"),
                    make_context()).allow


@pytest.mark.parametrize(
    ("resource", "code"),
    [
        (make_resource(make_device(blocked=True)), "device.blocked"),
        (make_resource(online=False), "device.offline"),
        (make_resource(enrolled=False), "device.not_enrolled"),
        (make_resource(make_device(identity_verified=False)), "device.identity_unverified"),
        (make_resource(mode=RemoteAccessMode.NEVER), "customer.remote_access_never"),
    ],
)
def test_device_and_customer_conditions_deny(resource, code) -> None:  # type: ignore[no-untyped-def]
    d = evaluate(DEFAULT, make_subject(), Action.DWA_OPEN, resource, make_context())
    assert not d.allow and code in codes(d)


def test_all_failures_are_reported_together() -> None:
    d = evaluate(DEFAULT, make_subject(mfa_age=None), Action.DWA_OPEN,
                 make_resource(make_device(blocked=True), online=False), make_context())
    assert {"device.blocked", "device.offline", "mfa.missing"} <= codes(d)


def test_approval_required_until_a_valid_approval_exists() -> None:
    res = make_resource(mode=RemoteAccessMode.APPROVAL_REQUIRED)
    d = evaluate(DEFAULT, make_subject(), Action.DWA_OPEN, res, make_context())
    assert not d.allow and d.obligations.requires_customer_approval
    assert "customer.approval_required" in codes(d)
    ok = evaluate(DEFAULT, make_subject(), Action.DWA_OPEN, res,
                  make_context(approved_until=NOW + timedelta(minutes=5)))
    assert ok.allow and "customer.approved" in codes(ok)
    expired = evaluate(DEFAULT, make_subject(), Action.DWA_OPEN, res,
                       make_context(approved_until=NOW - timedelta(seconds=1)))
    assert not expired.allow


def test_time_window_in_the_customers_time_zone() -> None:
    p = with_rules({"kind": "time_window", "id": "office", "timezone": "Asia/Tokyo",
                    "days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "17:00",
                    "scope": {"customer_id": "c1"}})
    # 10:00 UTC Wednesday = 19:00 Wednesday in Tokyo: outside
    d = evaluate(p, make_subject(), Action.DWA_OPEN, make_resource(), make_context())
    assert not d.allow
    (r,) = [r for r in d.reasons if r.code == "time_window.outside"]
    assert "Asia/Tokyo" in r.message and "Wed 19:00" in r.message
    # 01:00 UTC Wednesday = 10:00 in Tokyo: inside
    inside = make_context(now=datetime(2026, 11, 25, 1, 0, tzinfo=UTC))
    assert evaluate(p, make_subject(), Action.DWA_OPEN, make_resource(), inside).allow
    # Saturday 10:00 Tokyo: outside
    sat = make_context(now=datetime(2026, 11, 28, 1, 0, tzinfo=UTC))
    assert not evaluate(p, make_subject(), Action.DWA_OPEN, make_resource(), sat).allow


def test_overnight_time_window() -> None:
    p = with_rules({"kind": "time_window", "id": "night", "timezone": "UTC", "days": ["wed"],
                    "start": "22:00", "end": "06:00"})
    at = lambda h, d=25: make_context(now=datetime(2026, 11, d, h, 0, tzinfo=UTC))  # noqa: E731
    assert evaluate(p, make_subject(), Action.DWA_OPEN, make_resource(), at(23)).allow
    assert evaluate(p, make_subject(), Action.DWA_OPEN, make_resource(), at(3, 26)).allow  # Thu 03:00
    assert not evaluate(p, make_subject(), Action.DWA_OPEN, make_resource(), at(3, 25)).allow  # Wed 03:00
    assert not evaluate(p, make_subject(), Action.DWA_OPEN, make_resource(), at(12)).allow


def test_source_ip_ranges() -> None:
    p = with_rules({"kind": "source_ip", "id": "office-net", "cidrs": ["10.1.0.0/16", "2001:db8::/32"]})
    assert evaluate(p, make_subject(ip="10.1.2.3"), Action.DWA_OPEN, make_resource(), make_context()).allow
    assert evaluate(p, make_subject(ip="2001:db8::5"), Action.DWA_OPEN, make_resource(), make_context()).allow
    d = evaluate(p, make_subject(ip="192.0.2.9"), Action.DWA_OPEN, make_resource(), make_context())
    assert not d.allow and "192.0.2.9" in d.reasons[-1].message
    assert not evaluate(p, make_subject(ip="garbage"), Action.DWA_OPEN, make_resource(), make_context()).allow


def test_concurrent_session_limits() -> None:
    d = evaluate(DEFAULT, make_subject(), Action.DWA_OPEN, make_resource(),
                 make_context(user_live_sessions=3))
    assert "sessions.user_limit" in codes(d)
    d = evaluate(DEFAULT, make_subject(), Action.DWA_OPEN, make_resource(),
                 make_context(device_live_sessions=1))
    assert "sessions.device_limit" in codes(d)
    p = with_rules({"kind": "session_limit", "id": "one", "per_user": 1, "scope": {"site_id": "s1"}})
    assert not evaluate(p, make_subject(), Action.DWA_OPEN, make_resource(),
                        make_context(user_live_sessions=1)).allow


def test_label_model_site_and_role_conditions() -> None:
    p = with_rules(
        {"kind": "device_labels", "id": "lbl", "require_any": ["remote-ok"], "forbid": ["finance"]},
        {"kind": "device_model", "id": "mdl", "allow": ["hp laserjet*"], "scope": {"customer_id": "c1"}},
        {"kind": "deny", "id": "audit-site", "scope": {"site_id": "s-x"}, "description": "site under audit"},
        {"kind": "roles", "id": "admins-only", "allowed": ["dealer_admin"], "scope": {"customer_id": "vip"}},
    )
    ok_dev = make_device(labels=frozenset({"remote-ok"}))
    assert evaluate(p, make_subject(), Action.DWA_OPEN, make_resource(ok_dev), make_context()).allow
    assert "device.label_missing" in codes(evaluate(p, make_subject(), Action.DWA_OPEN, make_resource(), make_context()))
    fin = make_device(labels=frozenset({"remote-ok", "finance"}))
    assert "device.label_forbidden" in codes(evaluate(p, make_subject(), Action.DWA_OPEN, make_resource(fin), make_context()))
    canon = make_device(labels=frozenset({"remote-ok"}), identity=DeviceIdentity(model="Canon iR"))
    assert "device.model_not_allowed" in codes(evaluate(p, make_subject(), Action.DWA_OPEN, make_resource(canon), make_context()))
    d = evaluate(p, make_subject(), Action.DWA_OPEN, make_resource(ok_dev, site="s-x"), make_context())
    assert "rule.deny" in codes(d) and "site under audit" in d.explain()
    d = evaluate(p, make_subject(), Action.DWA_OPEN, make_resource(ok_dev, customer="vip"), make_context())
    assert "role.not_allowed_here" in codes(d)
    admin = make_subject(make_user(Role.DEALER_ADMIN))
    assert evaluate(p, admin, Action.DWA_OPEN, make_resource(ok_dev, customer="vip"), make_context()).allow


def test_admin_wildcard_permissions() -> None:
    admin = make_subject(make_user(Role.DEALER_ADMIN))
    tech = make_subject(make_user(Role.TECHNICIAN))
    for action in (Action.ADMIN_USERS, Action.ADMIN_POLICY, Action.ADMIN_TENANTS):
        assert evaluate(DEFAULT, admin, action, None, make_context()).allow
        assert not evaluate(DEFAULT, tech, action, None, make_context()).allow


def test_naive_now_is_rejected() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        make_context(now=datetime(2026, 1, 1))
