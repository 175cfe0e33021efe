"""Properties over random tenants, users, devices and rule sets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from policy import Action, Context, evaluate, load_policy
from printgate.domain import (
    CustomerId,
    DealerId,
    DeviceIdentity,
    RemoteAccessMode,
    Role,
    User,
    UserId,
)
from printgate.testing.policy_inputs import make_device, make_resource, make_subject

ids = st.sampled_from(["d1", "d2", "d3"])
roles = st.frozensets(st.sampled_from(list(Role)), max_size=3)
labels = st.frozensets(st.sampled_from(["a", "b", "finance", "remote-ok"]), max_size=3)
rules = st.lists(st.one_of(
    st.builds(lambda c: {"kind": "deny", "scope": {"customer_id": c}}, st.sampled_from(["c1", "c2"])),
    st.builds(lambda n: {"kind": "source_ip", "cidrs": [f"10.{n}.0.0/16"]}, st.integers(0, 3)),
    st.builds(lambda f: {"kind": "device_labels", "forbid": sorted(f)}, labels.filter(bool)),
    st.builds(lambda tz: {"kind": "time_window", "timezone": tz}, st.sampled_from(["UTC", "Asia/Tokyo", "America/New_York"])),
    st.builds(lambda n: {"kind": "session_limit", "per_user": n}, st.integers(0, 3)),
    st.builds(lambda m: {"kind": "mfa", "max_age_minutes": m}, st.integers(0, 30)),
), max_size=6)


@st.composite
def scenario(draw: st.DrawFn) -> tuple:
    policy_dealer = draw(ids)
    raw = draw(rules)
    for i, r in enumerate(raw):
        r["id"] = f"r{i}"
    policy = load_policy({"dealer_id": policy_dealer, "rules": raw,
                          "mfa_max_age_minutes": draw(st.integers(0, 60))})
    user_dealer = draw(st.one_of(st.none(), ids))
    user = User(UserId("u"), "u@example.org", "U", draw(roles),
                DealerId(user_dealer) if user_dealer else None,
                draw(st.one_of(st.none(), st.just(CustomerId("c1")))), draw(st.booleans()))
    device = make_device(identity=DeviceIdentity(model=draw(st.sampled_from([None, "HP", "Canon"]))),
                         labels=draw(labels), blocked=draw(st.booleans()),
                         identity_verified=draw(st.booleans()))
    resource = make_resource(device, dealer=draw(ids), customer=draw(st.sampled_from(["c1", "c2"])),
                             mode=draw(st.sampled_from(list(RemoteAccessMode))),
                             online=draw(st.booleans()), enrolled=draw(st.booleans()))
    subject = make_subject(user, ip=draw(st.sampled_from(["10.0.0.1", "10.2.3.4", "127.0.0.1", "::1"])),
                           mfa_age=draw(st.one_of(st.none(), st.floats(0, 7200))))
    now = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=draw(st.integers(0, 60 * 24 * 14)))
    approved = draw(st.one_of(st.none(), st.just(now + timedelta(minutes=5)), st.just(now - timedelta(minutes=5))))
    ctx = Context(now, draw(st.integers(0, 4)), draw(st.integers(0, 2)), approved)
    action = draw(st.sampled_from(list(Action)))
    return policy, subject, action, resource, ctx


@settings(max_examples=600, deadline=None)
@given(scenario())
def test_user_of_one_dealer_never_opens_a_device_of_another(case: tuple) -> None:
    policy, subject, action, resource, ctx = case
    decision = evaluate(policy, subject, action, resource, ctx)
    if subject.user.dealer_id != resource.dealer_id and action.is_dwa:
        assert not decision.allow
    if decision.allow and subject.user.dealer_id is not None:
        assert subject.user.dealer_id == resource.dealer_id == policy.dealer_id


@settings(max_examples=600, deadline=None)
@given(scenario())
def test_every_decision_carries_coded_reasons(case: tuple) -> None:
    policy, subject, action, resource, ctx = case
    decision = evaluate(policy, subject, action, resource, ctx)
    assert len(decision.reasons) >= 1
    for reason in decision.reasons:
        assert reason.code and "." in reason.code and reason.message
    if decision.allow:
        assert decision.obligations.max_duration_seconds
        assert not subject.user.disabled


@settings(max_examples=300, deadline=None)
@given(scenario())
def test_evaluation_is_deterministic(case: tuple) -> None:
    policy, subject, action, resource, ctx = case
    assert evaluate(policy, subject, action, resource, ctx) == evaluate(policy, subject, action, resource, ctx)
