"""Compiled rules alone: each rule is indexed under its scope and checks only its own facts."""

from datetime import time

from policy.compiled import CompiledPolicy, compile_rule
from policy.rules import DenyRule, RuleSet, Scope, SourceIpRule, TimeWindowRule
from tests.unit.policy.conftest import NOW, make_context, make_resource, make_subject


def test_rules_are_indexed_by_scope_and_only_those_of_the_resource_apply() -> None:
    ruleset = RuleSet(dealer_id="d1", rules=(
        DenyRule(id="everywhere"),
        DenyRule(id="c1-only", scope=Scope(customer_id="c1")),
        DenyRule(id="site-s9", scope=Scope(site_id="s9")),
    ))
    policy = CompiledPolicy.build(ruleset)
    ids = [r.id for r in policy.rules_for(make_resource(customer="c1"))]
    assert ids == ["everywhere", "c1-only"]


def test_a_source_ip_rule_checks_the_subjects_address() -> None:
    rule = compile_rule(SourceIpRule(id="office", cidrs=("10.1.0.0/16",)))
    inside = rule.check(make_subject(ip="10.1.2.3"), make_resource(), make_context())
    outside = rule.check(make_subject(ip="192.0.2.7"), make_resource(), make_context())
    assert inside is None
    assert outside is not None and "office" in outside.message + outside.code


def test_a_time_window_uses_the_rules_time_zone() -> None:
    # NOW is Wednesday 10:00 UTC = 19:00 in Tokyo: outside 08:00-18:00 there, inside in London
    tokyo = compile_rule(TimeWindowRule(id="tokyo", timezone="Asia/Tokyo", start=time(8), end=time(18)))
    london = compile_rule(TimeWindowRule(id="london", timezone="Europe/London", start=time(8), end=time(18)))
    assert NOW.hour == 10
    assert tokyo.check(make_subject(), make_resource(), make_context()) is not None
    assert london.check(make_subject(), make_resource(), make_context()) is None
