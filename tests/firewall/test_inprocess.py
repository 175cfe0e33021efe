"""In-process firewall: the allow-list the relay and proxy accept paths enforce."""

from __future__ import annotations

import pytest

from gateway.firewall import InProcessFirewall, reconcile_with_sessions
from printgate.errors import FirewallError


async def test_exception_admits_only_its_source_and_port_until_it_expires() -> None:
    now = [100.0]
    fw = InProcessFirewall(clock=lambda: now[0])
    assert not fw.is_allowed("10.0.0.5", 8480)
    await fw.allow("s1-tech", "10.0.0.5", 8480, 60)
    assert fw.is_allowed("10.0.0.5", 8480)
    assert not fw.is_allowed("10.0.0.6", 8480)  # attacker
    assert not fw.is_allowed("10.0.0.5", 8422)  # other port
    now[0] += 61
    assert not fw.is_allowed("10.0.0.5", 8480)
    assert fw.rules() == []


async def test_revoke_removes_the_exception() -> None:
    fw = InProcessFirewall()
    await fw.allow("s1-tech", "10.0.0.5", 8480, 60)
    await fw.revoke("s1-tech")
    assert not fw.is_allowed("10.0.0.5", 8480)
    await fw.revoke("s1-tech")  # idempotent


async def test_reconcile_keeps_only_live_sessions() -> None:
    fw = InProcessFirewall()
    await fw.allow("live-tech", "10.0.0.5", 8480, 60)
    await fw.allow("live-agent", "10.0.0.9", 8422, 60)
    await fw.allow("gone-tech", "10.0.0.7", 8480, 60)
    removed = await reconcile_with_sessions(fw, ["live"])
    assert removed == ["gone-tech"]
    assert {r.rule_id for r in fw.rules()} == {"live-tech", "live-agent"}


@pytest.mark.parametrize(
    ("rule_id", "src", "port", "timeout"),
    [
        ("x", "not-an-ip", 80, 10),
        ("x", "10.0.0.1", 0, 10),
        ("x", "10.0.0.1", 80, 0),
        ('x" } ; flush ruleset ; {', "10.0.0.1", 80, 10),
        ("", "10.0.0.1", 80, 10),
    ],
)
async def test_bad_rules_are_refused(rule_id: str, src: str, port: int, timeout: int) -> None:
    with pytest.raises(FirewallError):
        await InProcessFirewall().allow(rule_id, src, port, timeout)


@pytest.mark.parametrize("ends_first", ["s-one-tech", "s-two-tech"])
async def test_ending_one_of_two_sessions_from_one_address_keeps_the_other(ends_first: str) -> None:
    fw = InProcessFirewall()
    await fw.allow("s-one-tech", "10.0.0.5", 8480, 60)
    await fw.allow("s-two-tech", "10.0.0.5", 8480, 60)
    await fw.revoke(ends_first)
    assert fw.is_allowed("10.0.0.5", 8480)
    assert {r.rule_id for r in fw.rules()} == {"s-one-tech", "s-two-tech"} - {ends_first}
    await fw.revoke("s-two-tech" if ends_first == "s-one-tech" else "s-one-tech")
    assert not fw.is_allowed("10.0.0.5", 8480)


@pytest.mark.parametrize("short_first", [True, False])
async def test_expiry_of_one_session_leaves_the_other_sessions_exception(short_first: bool) -> None:
    now = [100.0]
    fw = InProcessFirewall(clock=lambda: now[0])
    grants = [("s-short-tech", 5), ("s-long-tech", 60)]
    for rule_id, timeout in grants if short_first else grants[::-1]:
        await fw.allow(rule_id, "10.0.0.5", 8480, timeout)
    now[0] += 6
    assert fw.is_allowed("10.0.0.5", 8480)
    assert [r.rule_id for r in fw.rules()] == ["s-long-tech"]
    await fw.revoke("s-short-tech")  # ended late, after its expiry
    assert fw.is_allowed("10.0.0.5", 8480)
    now[0] += 60
    assert not fw.is_allowed("10.0.0.5", 8480)


async def test_reconcile_keeps_a_live_session_sharing_an_address_with_a_gone_one() -> None:
    fw = InProcessFirewall()
    await fw.allow("live-tech", "10.0.0.5", 8480, 60)
    await fw.allow("gone-tech", "10.0.0.5", 8480, 60)
    assert await reconcile_with_sessions(fw, ["live"]) == ["gone-tech"]
    assert fw.is_allowed("10.0.0.5", 8480)
