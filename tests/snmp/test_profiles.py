"""Vendor profiles are data: parsed once, bad files refused with a clear message."""

from __future__ import annotations

import pytest

from agent.discovery import Change, compare_with_known, expand_targets
from agent.snmp.profiles import default_profiles, parse_profiles, profile_for
from printgate.domain import DeviceIdentity, DiscoveryResult, DiscoveryStatus
from printgate.errors import ConfigError


def test_default_profiles_load_and_longest_prefix_wins() -> None:
    assert len(default_profiles()) >= 10
    assert profile_for("1.3.6.1.4.1.18334.1.1.1.2.1.181.2.4").vendor == "Konica Minolta"
    assert profile_for("1.3.6.1.4.1.999999.1").vendor == ""
    custom = parse_profiles('[[profile]]\nprefix="1.3.6.1.4.1.11"\nvendor="HP"\n'
                            '[[profile]]\nprefix="1.3.6.1.4.1.11.2.3.9"\nvendor="HP JetDirect"\n')
    assert profile_for("1.3.6.1.4.1.11.2.3.9.1", custom).vendor == "HP JetDirect"


@pytest.mark.parametrize("text", [
    "[[profile]]\nvendor='x'\n",
    "[[profile]]\nprefix='1.3.x'\nvendor='x'\n",
    "[[profile]]\nprefix='1.3'\nvendor='x'\nserial_oids=['abc']\n",
    "[[profile]]\nprefix='1.3'\nvendor='x'\nserial_in_sys_descr='no group'\n",
    "[[profile]\n",
])
def test_bad_profile_files_are_refused_at_load(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_profiles(text)


def test_targets_expand_with_exclusions_and_refuse_garbage() -> None:
    assert expand_targets(["10.0.0.0/30", "10.0.0.9"], ["10.0.0.2"]) == ["10.0.0.1", "10.0.0.9"]
    with pytest.raises(ConfigError, match="not an IPv4 address"):
        expand_targets(["printer.local"])


def test_moved_device_is_recognised_and_a_different_device_on_a_known_ip_flagged() -> None:
    a = DeviceIdentity(serial="A1", mac="00:00:00:00:00:01", model="M")
    b = DeviceIdentity(serial="B2", mac="00:00:00:00:00:02", model="M")
    known = {"10.0.0.5": a, "10.0.0.6": b}
    found = [
        DiscoveryResult("10.0.0.7", DiscoveryStatus.PRINTER, identity=a),  # a moved .5 -> .7
        DiscoveryResult("10.0.0.6", DiscoveryStatus.PRINTER, identity=DeviceIdentity(serial="C3")),
        DiscoveryResult("10.0.0.8", DiscoveryStatus.EXCLUDED, identity=DeviceIdentity()),
    ]
    changes = {c.ip: c for c in compare_with_known(known, found)}
    assert changes["10.0.0.7"].change is Change.MOVED and changes["10.0.0.7"].previous_ip == "10.0.0.5"
    assert changes["10.0.0.6"].change is Change.REPLACED
    assert "10.0.0.8" not in changes
