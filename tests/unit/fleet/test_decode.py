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
