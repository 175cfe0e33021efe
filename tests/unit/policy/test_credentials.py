"""The right "use stored device credentials": per role, narrowed per customer by the dealer,
refusable by the customer, only with a stored credential; every reason listed."""

from __future__ import annotations

from policy import Action, load_policy
from policy.credentials import evaluate_credential_use
from printgate.domain import Role
from tests.unit.policy.conftest import make_user


def _decide(user, *, rules=None, forbids=False, stored=True, dealer="d1", customer="c1"):
    policy = load_policy({"dealer_id": "d1", **(rules or {})})
    return evaluate_credential_use(policy, user=user, dealer_id=dealer, customer_id=customer,
                                   customer_name="Acme", customer_forbids=forbids, stored=stored)


def _codes(decision):
    return [r.code for r in decision.reasons]


def test_technicians_and_dealer_admins_have_the_right_by_default_viewers_do_not():
    assert _decide(make_user(Role.TECHNICIAN)).allow
    assert _decide(make_user(Role.DEALER_ADMIN)).allow
    viewer = _decide(make_user(Role.VIEWER))
    assert not viewer.allow and "credentials.role_not_permitted" in _codes(viewer)


def test_the_right_is_separate_from_opening_web_pages():
    tech_without = {"permissions": {"technician": ["dwa.*", "device.read"]}}
    decision = _decide(make_user(Role.TECHNICIAN), rules=tech_without)
    assert not decision.allow and _codes(decision)[0] == "credentials.role_not_permitted"
    assert "device's own login page" in decision.reasons[0].message
    assert Action.CREDENTIALS_USE not in load_policy({"dealer_id": "d1", **tech_without}).permissions[Role.TECHNICIAN]


def test_the_dealer_narrows_the_right_per_customer():
    rules = {"stored_credentials_roles": {"c1": ["dealer_admin"]}}
    tech = _decide(make_user(Role.TECHNICIAN), rules=rules)
    assert not tech.allow and "credentials.customer_roles" in _codes(tech)
    assert "at Acme only dealer_admin" in tech.reasons[-1].message
    assert _decide(make_user(Role.DEALER_ADMIN), rules=rules).allow
    assert _decide(make_user(Role.TECHNICIAN), rules=rules, customer="c2").allow  # other customers unchanged
    nobody = _decide(make_user(Role.DEALER_ADMIN), rules={"stored_credentials_roles": {"c1": []}})
    assert not nobody.allow and "only nobody" in nobody.reasons[-1].message


def test_the_customer_can_forbid_it_and_every_reason_is_listed():
    decision = _decide(make_user(Role.VIEWER), forbids=True, stored=False)
    assert not decision.allow
    assert _codes(decision) == ["credentials.role_not_permitted", "credentials.customer_forbids",
                                "credentials.none_stored"]


def test_another_dealers_user_or_a_customer_user_never_uses_the_credentials():
    assert _codes(_decide(make_user(Role.TECHNICIAN, dealer="d2"), dealer="d2"))[-1] == "ownership.other_tenant"
    assert not _decide(make_user(Role.TECHNICIAN, dealer="d2")).allow
    assert not _decide(make_user(Role.CUSTOMER_ADMIN, dealer=None, customer="c1")).allow
    assert not _decide(make_user(Role.TECHNICIAN, disabled=True)).allow


def test_an_allow_explains_itself():
    decision = _decide(make_user(Role.TECHNICIAN))
    assert _codes(decision) == ["credentials.role_allowed", "credentials.same_tenant",
                                "credentials.customer_allows", "credentials.stored"]
    assert decision.explain().startswith("ALLOW")
