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


def test_model_comes_from_an_ieee1284_device_id_prefixed_with_the_vendor() -> None:
    from agent.snmp.parsing import model_from_device_id

    assert model_from_device_id("MFG:Xerox; CMD:PCL; MDL:AltaLink C8045; CLS:Printer;", "Xerox") == \
        "Xerox AltaLink C8045"
    assert model_from_device_id("MANUFACTURE:OKI UK LTD;MODEL:MC873;CLASS:PRINTER;", "OKI") == "OKI MC873"
    assert model_from_device_id("MFG:HP;MDL:HP LaserJet M130;", "HP") == "HP LaserJet M130"
    assert model_from_device_id("MFG:x;CLS:PRINT", "x") is None
    assert model_from_device_id("garbage without fields", "") is None


def test_profiles_accept_device_id_oids_and_refuse_bad_ones() -> None:
    [p] = parse_profiles('[[profile]]\nprefix="1.3.6.1.4.1.253"\nvendor="Xerox"\n'
                         'device_id_oids=["1.3.6.1.4.1.253.8.51.1.2.1.20.1"]\n')
    assert "1.3.6.1.4.1.253.8.51.1.2.1.20.1" in p.identity_oids
    assert "1.3.6.1.4.1.11.2.3.9.1.1.7.0" in p.identity_oids  # HP's, tried for every printer
    with pytest.raises(ConfigError):
        parse_profiles('[[profile]]\nprefix="1.3"\nvendor="x"\ndevice_id_oids=["MDL"]\n')


PRINT_SERVERS = ("print server",)


def test_the_printer_makers_common_in_mps_fleets_have_names() -> None:
    makers = {p.vendor for p in default_profiles()
              if p.prefix.startswith("1.3.6.1.4.1.") and not any(s in p.vendor for s in PRINT_SERVERS)
              and p.vendor not in ("APC", "Microsoft", "net-snmp", "Netgear")}
    assert len(makers) >= 30, sorted(makers)
    prefixes = [p.prefix for p in default_profiles()]
    assert len(prefixes) == len(set(prefixes)), "one profile per enterprise prefix"
    for sys_object_id, vendor in (
        ("1.3.6.1.4.1.297.1.111.101.1.50.1.4.1", "Fuji Xerox"),  # a FUJIFILM Apeos still answers 297
        ("1.3.6.1.4.1.1129.2.3.45.1", "Toshiba"),
        ("1.3.6.1.4.1.10642.1.1", "Zebra"),
        ("1.3.6.1.4.1.4322.1.1", "Muratec"),
        ("1.3.6.1.4.1.40093.1", "Pantum"),
        ("1.3.6.1.4.1.24807.1", "Riso"),
    ):
        assert profile_for(sys_object_id).vendor == vendor


def test_a_recording_answering_as_fuji_xerox_is_named_so() -> None:
    from agent.snmp import oids
    from agent.snmp.parsing import identity_from
    from agent.snmp.values import Kind, SnmpValue
    from lab import snmprec
    from lab.snmp import recording_path

    data = snmprec.load(recording_path("xerox"))
    data[oids.SYS_OBJECT_ID] = SnmpValue(Kind.OID, "1.3.6.1.4.1.297.1.111.101.1.50.1.4.1")
    identity, _ = identity_from(data)
    assert identity.vendor == "Fuji Xerox"
