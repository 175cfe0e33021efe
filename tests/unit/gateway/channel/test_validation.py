"""What an agent sends, checked at the edge (gateway/channel/validation.py): reasons, never raises."""

from __future__ import annotations

import time

from gateway.channel.validation import (
    AHEAD_MS,
    EARLIEST_MS,
    MAX_DEVICES,
    check_inventory,
    device_problem,
    heartbeat_problem,
    timestamp_problem,
)
from printgate.wire import agent_pb2 as pb

NOW = 1_800_000_000_000


def device(ip: str = "192.0.2.10", **kw: object) -> pb.DiscoveredDevice:
    return pb.DiscoveredDevice(ip=ip, ews_port=kw.pop("ews_port", 80), ews_scheme=kw.pop("ews_scheme", "http"), **kw)  # type: ignore[arg-type]


def test_a_good_device_passes_and_each_bad_field_is_named() -> None:
    assert device_problem(device()) is None
    assert device_problem(device("2001:db8::1")) is None
    assert "is not an IP address" in (device_problem(device("printer.local")) or "")
    assert "out of range" in (device_problem(device(ews_port=70000)) or "")
    assert "not http or https" in (device_problem(device(ews_scheme="ftp")) or "")
    assert device_problem(device(serial="x" * 129)) == "device 192.0.2.10: serial is longer than 128 characters"


def test_bad_devices_are_refused_one_by_one_the_others_go_on() -> None:
    result = check_inventory(pb.Inventory(devices=[device(), device("nope")]))
    assert [d.ip for d in result.devices] == ["192.0.2.10"] and len(result.refused) == 1 and result.problem is None


def test_an_inventory_with_nothing_valid_or_too_many_devices_is_refused_whole() -> None:
    none_valid = check_inventory(pb.Inventory(devices=[device("a"), device("b")]))
    assert none_valid.devices == [] and none_valid.problem is not None and "(and 1 more)" in none_valid.problem
    too_many = check_inventory(pb.Inventory(devices=[device()] * (MAX_DEVICES + 1)))
    assert too_many.problem == f"an inventory has at most {MAX_DEVICES} devices, not {MAX_DEVICES + 1}"
    assert check_inventory(pb.Inventory(scanned_at_ms=5, devices=[device()])).problem is not None


def test_timestamps_are_zero_or_between_2000_and_a_day_ahead() -> None:
    assert timestamp_problem("t", 0, now_ms=NOW) is None
    assert timestamp_problem("t", EARLIEST_MS, now_ms=NOW) is None
    assert timestamp_problem("t", NOW + AHEAD_MS, now_ms=NOW) is None
    assert timestamp_problem("t", EARLIEST_MS - 1, now_ms=NOW) is not None
    assert timestamp_problem("t", NOW + AHEAD_MS + 1, now_ms=NOW) is not None
    assert timestamp_problem("t", 1_700_000_000, now_ms=NOW) is not None  # seconds, not milliseconds


def test_a_heartbeat_is_refused_whole_for_one_bad_value() -> None:
    now = int(time.time() * 1000)
    good = pb.HeartbeatRequest(sent_at_ms=now, queue_length=3, printers=2)
    assert heartbeat_problem(good) is None
    assert heartbeat_problem(pb.HeartbeatRequest(queue_length=-1)) == (
        "queue_length, printers and queued_bytes cannot be negative")
    assert heartbeat_problem(pb.HeartbeatRequest(agent_version="v" * 65)) is not None
    assert "drops.last_at_ms" in (heartbeat_problem(pb.HeartbeatRequest(
        drops=[pb.ReadingsDrop(ip="192.0.2.1", kind="k", reason="r", count=1, last_at_ms=now + 2 * AHEAD_MS)])) or "")
