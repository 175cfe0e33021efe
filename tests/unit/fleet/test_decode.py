"""fleet.decode on hand-made batches: version 2 and version 1, batch-level refusals, and
per-reading rejections that leave the rest of the batch."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from fleet.decode import MAX_READINGS, decode_batch, decode_v1
from printgate.domain import (
    CounterValue,
    PrinterAlert,
    PrinterStatus,
    Reading,
    ReadingKind,
    SupplyLevel,
    SupplyState,
)
from printgate.errors import ReadingsPayloadInvalid
from printgate.wire import agent_pb2 as pb
from printgate.wire import convert

T0 = datetime(2026, 3, 1, 8, 0, 0, 123456, tzinfo=UTC)
R = Reading(
    id="r1", ip="10.0.0.5", taken_at=T0, kinds=tuple(ReadingKind), serial="SN1",
    counters=(CounterValue("marker.1.1.life", 15232),),
    supplies=(SupplyLevel(1, "Black", "toner", "black", "percent", 100, 28),
              SupplyLevel(2, "Waste", "wasteToner", None, "percent", -2, -3, SupplyState.SOME_REMAINING)),
    alerts=(PrinterAlert(3, "critical", "cover", "coverOpen", "Door open", None),),
    status=PrinterStatus(None, ("doorOpen",), "warning"), errors=("hrDeviceStatus: timeout",),
)


def v2(*readings: Reading, batch_id: str = "b1") -> pb.ReadingsBatch:
    return pb.ReadingsBatch.FromString(convert.readings_batch("s", batch_id, readings).SerializeToString())


def test_a_version_2_batch_round_trips_every_value_exactly() -> None:
    bare = replace(R, id="r2", serial=None, status=None, supplies=(), alerts=())
    got = decode_batch(v2(R, bare))
    assert got.version == 2 and got.readings == [R, bare] and got.rejected == []


def test_a_version_1_json_batch_gives_the_same_readings() -> None:
    payload = json.dumps({"readings": [R.to_dict()]}).encode()
    assert decode_batch(pb.ReadingsBatch(batch_id="b1", payload_json=payload)).readings == [R]
    assert decode_v1("b1", payload).version == 1


@pytest.mark.parametrize("bad, why", [
    (replace(R, counters=(CounterValue("marker.1.1.life", -1),)), "counter 'marker.1.1.life' = -1"),
    (replace(R, id=""), "has an id of 0 characters"),
    (replace(R, kinds=()), "names no reading kinds"),
    (replace(R, ip=""), "has no usable ip"),
    (replace(R, serial="x" * 129), "serial longer than 128"),
    (replace(R, supplies=(SupplyLevel(1, "Black", "toner", None, "percent", 100, -9),)), "supply #1 level -9"),
])
def test_a_bad_reading_is_refused_alone_with_its_position_id_and_reason(bad: Reading, why: str) -> None:
    ok = replace(R, id="ok")
    got = decode_batch(v2(ok, bad, replace(R, id="ok2")))
    assert [r.id for r in got.readings] == ["ok", "ok2"]
    [rejection] = got.rejected
    assert rejection.position == 1 and rejection.reading_id == bad.id[:64]
    assert rejection.reason.startswith("reading #1 ") and why in rejection.reason


def test_unknown_kind_or_supply_state_on_the_wire_is_refused_per_reading() -> None:
    batch = v2(R, replace(R, id="r2"))
    batch.readings[0].kinds.append("toner")
    batch.readings[1].supplies[0].state = "half"
    got = decode_batch(batch)
    assert got.readings == [] and [r.position for r in got.rejected] == [0, 1]
    assert "toner" in got.rejected[0].reason and "half" in got.rejected[1].reason


def test_a_repeated_reading_id_is_refused_the_second_time() -> None:
    got = decode_batch(v2(R, R))
    assert got.readings == [R] and got.rejected[0].reason == "reading #1 repeats id 'r1'"


@pytest.mark.parametrize("batch, why", [
    (pb.ReadingsBatch(batch_id="", version=2), "batch id must be"),
    (pb.ReadingsBatch(batch_id="b", version=3), "unknown readings version 3"),
    (pb.ReadingsBatch(batch_id="b", version=2, payload_json=b"{}"), "not payload_json"),
    (pb.ReadingsBatch(batch_id="b", payload_json=b"[1]"), '"readings" list'),
    (pb.ReadingsBatch(batch_id="b", payload_json=b"\xff"), "not UTF-8"),
    (pb.ReadingsBatch(batch_id="b", payload_json=json.dumps({"readings": [{}] * (MAX_READINGS + 1)}).encode()),
     "exceed the limit"),
])
def test_an_unreadable_batch_is_refused_whole_with_a_reason(batch: pb.ReadingsBatch, why: str) -> None:
    with pytest.raises(ReadingsPayloadInvalid) as info:
        decode_batch(batch)
    assert why in info.value.message and "nothing stored" in info.value.message


def _v1_with(**changes: object) -> bytes:
    d = R.to_dict()
    d.update(changes)
    return json.dumps({"readings": [d, {**R.to_dict(), "id": "ok"}]}).encode()


@pytest.mark.parametrize("changes, why", [
    ({"counters": [["marker.1.1.life", True, "impressions"]]}, "'marker.1.1.life' = true (an integer expected)"),
    ({"counters": [["marker.1.1.life", "12", "impressions"]]}, "'marker.1.1.life' = \"12\" (an integer expected)"),
    ({"alerts": [[2**40, "critical", "cover", "coverOpen", "Door open", None]]}, "alert index 1099511627776"),
    ({"supplies": [[1, {"html": "<b>"}, "toner", "black", "percent", 100, 28, "known"]]}, "malformed supply"),
    ({"supplies": [[1, "Black", {"x": 1}, "black", "percent", 100, 28, "known"]]}, "type dict (text expected)"),
    ({"supplies": [[1, "Black", "toner", "black", "percent", 100, True, "known"]]}, "non-integer level"),
    ({"id": {"a": 1}}, "id of type dict"),
    ({"serial": "SN\u0000"}, "NUL"),
    ({"serial": "SN\ud800"}, "lone surrogate"),
    ({"kinds": ["counters", "counters"]}, "more than once"),
    ({"taken_at": "9999-01-01T00:00:00+00:00"}, "ahead of the cloud's clock"),
    ({"taken_at": "1970-01-01T00:00:00+00:00"}, "days ago"),
])
def test_a_version_1_value_the_database_or_common_sense_refuses_is_rejected_alone(
    changes: dict[str, object], why: str,
) -> None:
    got = decode_v1("b1", _v1_with(**changes), now=T0)
    assert [r.id for r in got.readings] == ["ok"]
    assert len(got.rejected) == 1 and why in got.rejected[0].reason, got.rejected[0].reason


def test_time_bounds_are_relative_to_the_cloud_clock() -> None:
    assert decode_batch(v2(replace(R, taken_at=T0 + timedelta(minutes=9))), now=T0).readings
    assert decode_batch(v2(replace(R, taken_at=T0 + timedelta(minutes=11))), now=T0).rejected


# ---- the fast pass of version 2 (fleet.decode.clean_reading) -------------------------------------
# It converts and checks a wire reading in one pass; what it does not vouch for goes through the
# full checks. It must never be more lenient than they are, nor convert differently.

def _wire(r: Reading = R) -> pb.Reading:
    return convert.reading_to_wire(r)


def _first(field_name: str, name: str, value: object) -> object:
    def mutate(m: pb.Reading) -> None:
        setattr(getattr(m, field_name)[0], name, value)
    return mutate


def _top(name: str, value: object) -> object:
    def mutate(m: pb.Reading) -> None:
        setattr(m, name, value)
    return mutate


def _status(name: str, value: object) -> object:
    def mutate(m: pb.Reading) -> None:
        setattr(m.status, name, value)
    return mutate


def _extend(field_name: str, values: list[object]) -> object:
    def mutate(m: pb.Reading) -> None:
        getattr(m, field_name).extend(values)
    return mutate


NOW = T0 + timedelta(minutes=3)
MUTATIONS = [
    _top("id", ""), _top("id", "x" * 64), _top("id", "x" * 65), _top("id", "a\x00b"), _top("id", "réading"),
    _top("ip", ""), _top("ip", "i" * 64), _top("ip", "i" * 65), _top("ip", "1\x00"),
    _top("taken_at_us", convert.micros(NOW + timedelta(minutes=10))),
    _top("taken_at_us", convert.micros(NOW + timedelta(minutes=10)) + 1),
    _top("taken_at_us", convert.micros(NOW - timedelta(days=5 * 365))),
    _top("taken_at_us", convert.micros(NOW - timedelta(days=5 * 365)) - 1), _top("taken_at_us", -2**62),
    _top("serial", "s" * 128), _top("serial", "s" * 129), _top("serial", "S\x00"), _top("serial", ""),
    lambda m: m.ClearField("serial"), lambda m: m.ClearField("kinds"), _extend("kinds", ["counters"]),
    _extend("kinds", ["toner"]), lambda m: m.ClearField("status"),
    _first("counters", "name", ""), _first("counters", "name", "n" * 128), _first("counters", "name", "n" * 129),
    _first("counters", "unit", "u" * 65), _first("counters", "value", -1), _first("counters", "value", 0),
    _first("counters", "value", 2**63 - 1), _first("counters", "name", "m\x00"),
    _extend("counters", [pb.Counter(name=f"c{i}", value=i, unit="x") for i in range(512)]),
    _first("supplies", "index", -1), _first("supplies", "index", 0), _first("supplies", "index", 2**31 - 1),
    _first("supplies", "description", "d" * 1024), _first("supplies", "description", "d" * 1025),
    _first("supplies", "description", "Tóner ✓"), _first("supplies", "description", "bad \ud7ff ok"),
    _first("supplies", "type", "t" * 65), _first("supplies", "colour", "c" * 65), _first("supplies", "unit", "u" * 65),
    _first("supplies", "level", -4), _first("supplies", "level", -3), _first("supplies", "level", 2**31),
    _first("supplies", "level", 100), _first("supplies", "level", 101), _first("supplies", "max_capacity", 0),
    _first("supplies", "max_capacity", -4), _first("supplies", "max_capacity", 2**31),
    _first("supplies", "state", "half"), _first("supplies", "state", "other"),
    lambda m: m.supplies[0].ClearField("level"), lambda m: m.supplies[0].ClearField("colour"),
    _first("alerts", "index", -7), _first("alerts", "severity", "s" * 33), _first("alerts", "group", "g" * 65),
    _first("alerts", "code", "x\x00y"), _first("alerts", "description", "d" * 1025),
    _first("alerts", "training_level", "t" * 65), lambda m: m.alerts[0].ClearField("training_level"),
    _status("status", "s" * 33), _status("device_status", "d" * 33), _status("device_status", "d\x00"),
    lambda m: m.status.errors.extend(["e"] * 64), lambda m: m.status.errors.append("e" * 65),
    _extend("errors", ["e" * 1025]), _extend("errors", ["e\x00"]), _extend("errors", ["ok"] * 600),
]


@pytest.mark.parametrize("n", range(len(MUTATIONS)))
def test_the_fast_pass_is_never_more_lenient_than_the_full_checks_and_converts_alike(n: int) -> None:
    from fleet.decode import clean_reading, problem_of

    m = _wire()
    MUTATIONS[n](m)  # type: ignore[operator]
    m = pb.Reading.FromString(m.SerializeToString())  # as the channel receives it
    try:
        full: Reading | None = convert.reading_from_wire(m)
        assert full is not None
        if problem_of(full, now=NOW) is not None:
            full = None
    except ValueError:
        full = None
    now_us = convert.micros(NOW)
    fast = clean_reading(m, now_us - 5 * 365 * 86_400 * 1_000_000, now_us + 600 * 1_000_000)
    if full is None:
        assert fast is None, m
    else:  # a clean reading takes the fast pass, converted exactly as reading_from_wire does
        assert fast == full


def test_a_batch_of_clean_readings_takes_the_fast_pass_and_a_bad_one_keeps_its_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import fleet.decode as decode

    slow: list[str] = []

    def counted(msg: pb.Reading) -> Reading:
        slow.append(msg.id)
        return convert.reading_from_wire(msg)

    monkeypatch.setattr(decode, "reading_from_wire", counted)
    bad = replace(R, id="bad", supplies=(SupplyLevel(1, "Black", "toner", None, "percent", 100, -9),))
    got = decode_batch(v2(R, replace(R, id="r2"), bad, replace(R, id="r2")), now=T0 + timedelta(minutes=1))
    assert got.readings == [R, replace(R, id="r2")]
    assert slow == ["bad", "r2"]  # only what the fast pass did not vouch for (a bad value, a repeated id)
    assert [(x.position, x.reason) for x in got.rejected] == [
        (2, "reading #2 has supply #1 level -9 (RFC 3805: -3..2^31-1)"), (3, "reading #3 repeats id 'r2'")]
