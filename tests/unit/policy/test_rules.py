"""Rule sets are validated once; bad input is refused naming the field."""

from __future__ import annotations

import pytest

from policy import load_policy, parse_ruleset
from policy.errors import RuleSetInvalid

BAD = [
    ({"version": 1}, "dealer_id"),
    ({"dealer_id": "d", "rules": [{"kind": "time_window", "id": "t", "timezone": "Mars/Base"}]}, "unknown time zone"),
    ({"dealer_id": "d", "rules": [{"kind": "source_ip", "id": "s", "cidrs": ["10.0.0.300/8"]}]}, "not an IP network"),
    ({"dealer_id": "d", "rules": [{"kind": "source_ip", "id": "s", "cidrs": []}]}, "cidrs"),
    ({"dealer_id": "d", "rules": [{"kind": "teleport", "id": "x"}]}, "kind"),
    ({"dealer_id": "d", "rules": [{"kind": "deny", "id": "a"}, {"kind": "deny", "id": "a"}]}, "duplicate rule id"),
    ({"dealer_id": "d", "rules": [{"kind": "device_labels", "id": "l"}]}, "require_any or forbid"),
    ({"dealer_id": "d", "rules": [{"kind": "time_window", "id": "t", "timezone": "UTC", "start": "08:00", "end": "08:00"}]}, "must differ"),
    ({"dealer_id": "d", "permissions": {"technician": ["dwa.teleport"]}}, "unknown action"),
    ({"dealer_id": "d", "permissions": {"wizard": ["dwa.open"]}}, "permissions"),
    ({"dealer_id": "d", "mfa_max_age_minutes": -1}, "mfa_max_age_minutes"),
    ({"dealer_id": "d", "surprise": 1}, "surprise"),
]


@pytest.mark.parametrize(("data", "fragment"), BAD)
def test_bad_rule_sets_are_refused_with_the_field_named(data: dict, fragment: str) -> None:
    with pytest.raises(RuleSetInvalid) as err:
        parse_ruleset(data)
    assert fragment in str(err.value)
    assert err.value.code == "policy_invalid"


def test_rule_set_roundtrips_through_json() -> None:
    data = {"dealer_id": "d", "version": 7, "rules": [
        {"kind": "time_window", "id": "t", "timezone": "Europe/Berlin", "days": ["mon"],
         "start": "08:00", "end": "12:00", "scope": {"customer_id": "c"}},
        {"kind": "source_ip", "id": "s", "cidrs": ["10.0.0.0/8"]},
    ]}
    rs = parse_ruleset(data)
    again = parse_ruleset(rs.model_dump(mode="json"))
    assert again == rs and load_policy(again).version == 7
