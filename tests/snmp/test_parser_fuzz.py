"""Hypothesis fuzz: malformed, wrong-typed, huge varbinds never crash or hang the parser."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyasn1.type import univ
from pysnmp.proto import rfc1902, rfc1905

from agent.polling import reading_from
from agent.snmp import oids
from agent.snmp.parsing import classify, identity_from
from agent.snmp.profiles import profile_for
from agent.snmp.usm import from_pysnmp
from agent.snmp.values import Kind, SnmpValue
from printgate.domain import ReadingKind

ROOTS = [
    *oids.SYSTEM_SCALARS, *oids.IDENTITY_COLUMNS, *oids.COUNTER_COLUMNS, *oids.SUPPLY_COLUMNS,
    *oids.ALERT_COLUMNS, "1.3.6.1.4.1.18334.1.1.1.5.7.2.2.1.5.1", "1.3.6.1.2.1.43",
]

values = st.one_of(
    st.builds(SnmpValue, st.sampled_from(list(Kind)), st.none()),
    st.builds(SnmpValue, st.sampled_from(list(Kind)), st.integers(min_value=-(2**70), max_value=2**70)),
    st.builds(SnmpValue, st.sampled_from(list(Kind)), st.binary(max_size=3000)),
    st.builds(SnmpValue, st.sampled_from(list(Kind)), st.text(max_size=60)),
)
index = st.lists(st.integers(min_value=0, max_value=2**32), min_size=0, max_size=4).map(
    lambda xs: "".join(f".{x}" for x in xs)
)
oid = st.one_of(
    st.tuples(st.sampled_from(ROOTS), index).map("".join),
    st.text(alphabet="0123456789.x-", max_size=30),
)
varbinds = st.dictionaries(oid, values, max_size=80)


@settings(max_examples=400, deadline=1000, suppress_health_check=[HealthCheck.too_slow])
@given(varbinds, st.sampled_from(["127.0.20.11", "10.0.0.1", "not-an-ip"]))
def test_parsers_never_crash_on_arbitrary_varbinds(vb: dict[str, SnmpValue], ip: str) -> None:
    printer, reason = classify(vb)
    assert isinstance(printer, bool) and reason
    identity, errors = identity_from(vb, ip=ip)
    assert all(isinstance(e, str) for e in errors)
    reading = reading_from(
        vb, ip=ip, kinds=tuple(ReadingKind), serial=identity.serial,
        profile=profile_for(identity.sys_object_id), taken_at=datetime.now(UTC),
    )
    for s in reading.supplies:
        assert s.level is None or s.level >= 0
        assert s.max_capacity is None or s.max_capacity >= 0
    for c in reading.counters:
        assert c.value >= 0
    assert len(reading.supplies) <= 256 and len(reading.alerts) <= 256


pysnmp_values = st.one_of(
    st.integers(-(2**31), 2**31 - 1).map(rfc1902.Integer32),
    st.integers(0, 2**32 - 1).map(rfc1902.Counter32),
    st.integers(0, 2**32 - 1).map(rfc1902.Gauge32),
    st.integers(0, 2**64 - 1).map(rfc1902.Counter64),
    st.binary(max_size=100_000).map(rfc1902.OctetString),
    st.binary(min_size=4, max_size=4).map(rfc1902.IpAddress),
    st.lists(st.integers(0, 2**32 - 1), min_size=2, max_size=40).map(lambda xs: rfc1902.ObjectIdentifier((1, 3, *xs))),
    st.builds(univ.Null, st.just("")),
    st.builds(rfc1905.NoSuchObject, st.just("")),
    st.builds(rfc1905.EndOfMibView, st.just("")),
    st.builds(rfc1902.OctetString),  # no value at all
)


@settings(max_examples=300, deadline=1000)
@given(pysnmp_values)
def test_pysnmp_values_convert_without_crashing(value: object) -> None:
    converted = from_pysnmp(value)
    assert isinstance(converted, SnmpValue)
    if converted.kind is Kind.OCTETS:
        assert isinstance(converted.value, bytes) and len(converted.value) <= 64 * 1024
