"""The BER codec alone: requests encode as net-snmp would, responses decode, junk is refused."""

import pytest

from agent.snmp.ber import MalformedMessage, decode_oid, decode_response, encode_oid, encode_request
from agent.snmp.values import Kind


def test_oids_round_trip() -> None:
    for oid in ("1.3.6.1.2.1.1.1.0", "1.3.6.1.4.1.11.2.3.9.4.2.1.1.3.3.0", "2.999.1"):
        assert decode_oid(encode_oid(oid)) == oid


def test_a_get_request_has_the_known_bytes() -> None:
    # snmpget -v2c -c public <host> 1.3.6.1.2.1.1.1.0, request id 1 (net-snmp's encoding)
    got = encode_request(version=1, community=b"public", op="get", request_id=1, oids=["1.3.6.1.2.1.1.1.0"])
    assert got.hex() == "3026020101040670756" "26c6963a0190201010201000201003" "00e300c06082b060102010101000500"


def test_a_response_decodes() -> None:
    # GetResponse, request id 1, sysDescr.0 = "printer"
    data = bytes.fromhex("302d020101040670756"
                         "26c6963a2200201010201000201003015301306082b060102010101000407707269"
                         "6e746572")
    response = decode_response(data)
    assert (response.request_id, response.error_status) == (1, 0)
    ((oid, value),) = response.varbinds
    assert oid == "1.3.6.1.2.1.1.1.0" and value.kind is Kind.OCTETS and value.value == b"printer"


@pytest.mark.parametrize("junk", [b"", b"\x30", b"\x30\x03\x02\x01", bytes(64), b"\x30\x02\x05\x00trailing"])
def test_junk_is_refused_as_malformed(junk: bytes) -> None:
    with pytest.raises(MalformedMessage):
        decode_response(junk)
