"""SNMP values alone: typed access refuses the wrong type, text is made printable."""

import pytest

from agent.snmp.values import Kind, SnmpValue, WrongType


def test_typed_access() -> None:
    assert SnmpValue(Kind.COUNTER32, 12).as_int() == 12
    assert SnmpValue(Kind.OID, "1.3.6.1").as_oid() == "1.3.6.1"
    assert SnmpValue(Kind.OCTETS, b"HP\x00 LaserJet\x07 ").as_text() == "HP LaserJet"


def test_the_wrong_type_is_an_error() -> None:
    with pytest.raises(WrongType):
        SnmpValue(Kind.OCTETS, b"12").as_int()
    with pytest.raises(WrongType):
        SnmpValue(Kind.INTEGER, 3).as_text()


def test_absent_values() -> None:
    assert SnmpValue(Kind.NO_SUCH_OBJECT).absent and SnmpValue(Kind.END_OF_MIB).absent
    assert not SnmpValue(Kind.INTEGER, 0).absent
