from __future__ import annotations

from datetime import UTC, datetime

from alerting import rules
from printgate.domain import AuditRecord

AT = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def rec(type_: str, outcome: str = "success", **kw) -> AuditRecord:
    return AuditRecord(seq=kw.pop("seq", 1), at=kw.pop("at", AT), schema_version=1, type=type_,
                       outcome=outcome, prev_hash="", hash="", **kw)


def test_a_failed_password_counts_per_source_and_per_account() -> None:
    hits = rules.sign_in_hits(rec("auth.login", "failure", actor="a@x", source_ip="203.0.113.9"))
    assert [(h.rule.name, h.key) for h in hits] == [("signin.burst.source", "source:203.0.113.9"),
                                                    ("signin.burst.user", "user:a@x")]


def test_a_locked_account_counts_too_a_success_does_not() -> None:
    assert rules.sign_in_hits(rec("auth.login", "denied", actor="a@x", details={"reason": "locked"}))
    assert not rules.sign_in_hits(rec("auth.login", "success", actor="a@x", source_ip="1.2.3.4"))
    assert not rules.sign_in_hits(rec("auth.logout", "failure", actor="a@x"))


def test_a_replayed_totp_code_is_its_own_rule_not_a_failed_sign_in() -> None:
    r = rec("auth.mfa", "failure", actor="a@x", details={"reason": "replayed"})
    assert not rules.sign_in_hits(r)
    assert [h.rule for h in rules.simple_hits(r)] == [rules.TOTP_REPLAY]
    wrong = rec("auth.mfa", "failure", actor="a@x", source_ip="1.2.3.4", details={"reason": "invalid"})
    assert rules.simple_hits(wrong) == [] and len(rules.sign_in_hits(wrong)) == 2


def test_aggregated_refusals_carry_their_count() -> None:
    relay = rec("relay.connections.refused", "denied", source_ip="198.51.100.7",
                details={"refused": 42, "admitted": 3})
    [hit] = rules.simple_hits(relay)
    assert (hit.rule, hit.count, hit.key) == (rules.RELAY_REFUSED, 42, rules.RELAY_KEY)
    rpc = rec("agent.rpc.denied", "denied", details={"reason": "foreign_site", "count": 7, "agent_id": "ag1"})
    [hit] = rules.simple_hits(rpc)
    assert (hit.rule, hit.count, hit.key) == (rules.CHANNEL_REFUSED, 7, "agent:ag1")


def test_a_revoked_agent_is_critical() -> None:
    r = rec("agent.rpc.denied", "denied", actor="agent:ag9", details={"reason": "agent_revoked", "count": 3})
    [hit] = rules.simple_hits(r)
    assert hit.rule is rules.REVOKED_AGENT and hit.rule.severity is rules.Severity.CRITICAL
    assert hit.key == "agent:ag9" and hit.count == 3


def test_a_command_stream_taken_over_on_one_node_or_across_nodes_is_a_shared_certificate() -> None:
    one_node = rec("agent.stream.taken_over", "denied",
                   details={"reason": "command_stream_taken_over", "count": 4, "agent_id": "ag3"})
    across = rec("agent.stream.taken_over", "denied", actor="agent:ag3", source_ip="192.0.2.7",
                 details={"reason": "command_stream_taken_over", "count": 1, "agent_id": "ag3",
                          "node": "n2", "previous_node": "n1", "cross_node": True})
    for r, count in ((one_node, 4), (across, 1)):
        [hit] = rules.simple_hits(r)
        assert (hit.rule, hit.key, hit.count) == (rules.AGENT_CERT_SHARED, "agent:ag3", count)
        assert hit.rule.severity is rules.Severity.HIGH


def test_blocked_transfers_identity_mismatches_and_reveals() -> None:
    assert rules.simple_hits(rec("dwa.transfer_blocked", "blocked", session_id="s1"))[0].rule is rules.BLOCKED_TRANSFER
    assert rules.simple_hits(rec("device.identity_mismatch", "failure", session_id="s1"))[0].rule is rules.DEVICE_IDENTITY
    assert rules.simple_hits(rec("device.identity_changed", "failure", device_id="d1"))[0].key == "device:d1"
    reveal = rules.simple_hits(rec("vault.credential_revealed", actor="t@d", device_id="d1", customer_id="c1"))
    assert reveal[0].rule is rules.CREDENTIAL_REVEAL and reveal[0].customer_id == "c1"


def test_ordinary_records_raise_nothing() -> None:
    for t in ("dwa.request", "dwa.session.opened", "agent.inventory", "auth.login"):
        r = rec(t, actor="a@x", source_ip="1.2.3.4")
        assert rules.simple_hits(r) == [] and rules.sign_in_hits(r) == []


def test_severity_parses_names_and_refuses_others() -> None:
    assert rules.Severity.parse(" High ") is rules.Severity.HIGH
    try:
        rules.Severity.parse("urgent")
    except ValueError as exc:
        assert "low, medium, high, critical" in str(exc)
    else:
        raise AssertionError("accepted an unknown severity")


def test_a_relay_spray_from_400_addresses_is_a_few_messages_naming_the_sources() -> None:
    """Issue 20 F4: one refused connection from each of 400 addresses over 20 minutes was 51
    platform alerts; across sources it is one alert and a summary per quiet window."""
    from datetime import timedelta

    from alerting.engine import Engine

    engine = Engine()
    out = []
    for i in range(400):
        ip = f"198.51.{100 + i // 250}.{i % 250 + 1}"
        out += engine.feed(rec("relay.connections.refused", "denied", seq=i + 1, at=AT + timedelta(seconds=3 * i),
                               source_ip=ip, details={"refused": 1}))
    out += engine.tick(AT + timedelta(hours=1))
    assert 1 <= len(out) <= 3, [a.title for a in out]
    assert sum(a.count for a in out) == 400  # every refusal counted once
    assert out[0].source_ip == "198.51.100.1"
    assert "198.51.100.2" in out[1].text  # the summary names sources ("from: ...")
    assert sum(a.details.get("sources", 0) for a in out) == 399  # and counts them (the first is the alert's)
    assert "from 199 source addresses" in out[1].text or "from 200 source addresses" in out[1].text
    assert Engine.from_state(engine.to_state()).to_state() == engine.to_state()
