"""SNMP parsing alone, on the real recordings: what the agent makes of a printer's answers."""

from agent.snmp.parsing import classify, identity_from, supplies_from
from agent.snmp.values import Kind, SnmpValue
from lab import snmprec
from lab.snmp import recording_path


def _recorded(name: str):  # type: ignore[no-untyped-def]
    return snmprec.load(recording_path(name))


def test_a_printer_is_classified_by_its_printer_mib_answers() -> None:
    assert classify(_recorded("jetdirect_m130nw"))[0] is True
    printer, reason = classify(_recorded("linux"))
    assert printer is False and "Printer-MIB" in reason


def test_the_identity_of_a_recorded_printer() -> None:
    identity, errors = identity_from(_recorded("jetdirect_m130nw"), ip="127.0.20.15")
    assert identity.serial == "VNCRC48198"
    assert identity.model and identity.sys_object_id and errors == []


def test_supplies_are_read_from_a_recording() -> None:
    supplies, _errors = supplies_from(_recorded("jetdirect_m130nw"))
    assert supplies and all(s.description for s in supplies)


def test_a_wrong_typed_serial_is_an_error_and_the_sys_descr_serial_is_used() -> None:
    data = dict(_recorded("jetdirect_m130nw"))
    data["1.3.6.1.2.1.43.5.1.1.17.1"] = SnmpValue(Kind.INTEGER, 7)  # prtGeneralSerialNumber.1
    identity, errors = identity_from(data, ip="127.0.20.15")
    assert any("prtGeneralSerialNumber" in str(e) for e in errors)
    assert identity.serial == "VNCRC48198"  # from "SN:..." in sysDescr (the vendor profile's fallback)
