"""nftables element text and listings of the firewall exceptions (pure; the kernel is in test_nftables_netns)."""

from __future__ import annotations

import json

import pytest

from gateway.firewall.base import FirewallRule
from gateway.firewall.nft_elements import (
    end_commands,
    grant_commands,
    parse_set,
    rule_tag,
    session_rules,
)


def test_grant_keeps_the_shared_element_as_long_as_the_longest_session() -> None:
    rule = FirewallRule("s2-tech", "10.0.0.5", 8480, 130.0)
    other = FirewallRule("s1-tech", "10.0.0.5", 8480, 160.0)
    text = "\n".join(grant_commands("printgate", rule, [other], now=100.0))
    assert f'sessions {{ 10.0.0.5 . 8480 . {rule_tag("s2-tech"):#010x} timeout 30000ms comment "s2-tech" }}' in text
    assert 'allowed { 10.0.0.5 . 8480 timeout 60000ms comment "s1-tech" }' in text


def test_end_deletes_the_shared_element_only_with_the_last_live_session() -> None:
    rule = FirewallRule("s1-tech", "10.0.0.5", 8480, 160.0)
    expired = FirewallRule("s2-tech", "10.0.0.5", 8480, 90.0)
    assert end_commands("printgate", rule, [expired], now=100.0)[-1] == \
        "delete element inet printgate allowed { 10.0.0.5 . 8480 }"
    live = FirewallRule("s3-tech", "10.0.0.5", 8480, 120.0)
    assert 'allowed { 10.0.0.5 . 8480 timeout 20000ms comment "s3-tech" }' in end_commands(
        "printgate", rule, [live], now=100.0)[-1]


@pytest.mark.parametrize(
    "listing",
    [
        {"nftables": [{"metainfo": {}}]},
        {"nftables": [{"set": {"name": "sessions"}}]},
        {"nftables": [{"set": {"elem": ["10.0.0.5", {"elem": "x"}, {"elem": {"val": 5}}]}}]},
        {"nftables": [{"set": {"elem": [{"elem": {"val": {"concat": "nope"}}}]}}]},
    ],
)
def test_unknown_listing_shapes_give_no_elements(listing: object) -> None:
    assert list(parse_set(json.dumps(listing))) == []


def test_session_elements_whose_tag_does_not_match_their_comment_are_not_taken_as_rules() -> None:
    good = {"elem": {"val": {"concat": ["10.0.0.5", 8480, rule_tag("s1-tech")]}, "expires": 30, "comment": "s1-tech"}}
    forged = {"elem": {"val": {"concat": ["10.0.0.6", 8480, 7]}, "expires": 30, "comment": "s1-tech"}}
    listing = json.dumps({"nftables": [{"set": {"elem": [good, forged]}}]})
    (rule,) = session_rules(parse_set(listing), clock=0.0)
    assert (rule.rule_id, rule.src, rule.dport, rule.expires_at) == ("s1-tech", "10.0.0.5", 8480, 30.0)
