"""The tester's inputs (issue 12 follow-up, item 4), sent by a real gRPC client with a valid agent
certificate: a device whose address is SQL, a port of -1, a 100,000-character serial (all
stored before, marked verified), and a heartbeat with int64-max timestamps (answered
``UNKNOWN: ValueError year 292278994 is out of range``)."""

from __future__ import annotations

import grpc
import pytest
from grpc import aio

from printgate.wire import agent_pb2 as pb
from printgate.wire import agent_pb2_grpc as pb_grpc
from tests.channel.conftest import Cloud, eventually
from tests.channel.test_channel_authorisation import creds, denied_records

INT64_MAX = 2**63 - 1


def _device(ip: str = "10.9.9.9", port: int = 80, serial: str = "S1") -> pb.DiscoveredDevice:
    return pb.DiscoveredDevice(ip=ip, ews_port=port, serial=serial, status=pb.DEVICE_STATUS_PRINTER)


async def test_bad_devices_are_refused_each_with_its_reason(cloud: Cloud) -> None:
    identity = await cloud.enrol(name="bad-devices")
    bad = [_device(ip="not-an-ip'; drop table devices;--"), _device(port=-1), _device(serial="9" * 100_000),
           _device(port=70000)]
    async with aio.secure_channel(cloud.server.target, creds(cloud, identity)) as ch:
        call = pb_grpc.AgentChannelStub(ch).UploadInventory(pb.Inventory(devices=[*bad, _device(ip="10.9.9.10")]),
                                                            timeout=10)
        await call
        trailers = dict(await call.trailing_metadata() or ())
    stored = await eventually(lambda: [d for a, d in cloud.recorder.inventories if a == identity.agent_id])
    assert [[d.ip for d in inv] for inv in stored] == [["10.9.9.10"]]  # only the valid device went on
    why = trailers["printgate-refused-devices"]
    assert "is not an IP address" in why and "port -1 is out of range" in why
    assert "serial is longer than 128" in why and "port 70000" in why
    assert [e.details["count"] for e in await denied_records(cloud, identity.agent_id, "invalid_device")] == [4]


async def test_an_inventory_with_nothing_valid_is_invalid_argument(cloud: Cloud) -> None:
    identity = await cloud.enrol(name="all-bad")
    async with aio.secure_channel(cloud.server.target, creds(cloud, identity)) as ch:
        stub = pb_grpc.AgentChannelStub(ch)
        for inventory in (pb.Inventory(devices=[_device(ip="x"), _device(port=-1)]),
                          pb.Inventory(devices=[_device()], scanned_at_ms=INT64_MAX)):
            with pytest.raises(aio.AioRpcError) as err:
                await stub.UploadInventory(inventory, timeout=10)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
    assert not [d for a, d in cloud.recorder.inventories if a == identity.agent_id]


@pytest.mark.parametrize("heartbeat", [
    pb.HeartbeatRequest(sent_at_ms=INT64_MAX),
    pb.HeartbeatRequest(oldest_queued_ms=INT64_MAX),
    pb.HeartbeatRequest(tasks=[pb.TaskHealth(name="x", last_error_at_ms=INT64_MAX)]),
    pb.HeartbeatRequest(drops=[pb.ReadingsDrop(ip="10.0.0.1", first_at_ms=-INT64_MAX, count=1)]),
    pb.HeartbeatRequest(queue_length=-5),
    pb.HeartbeatRequest(tasks=[pb.TaskHealth(name="x" * 10_000)]),
], ids=["sent_at", "oldest_queued", "task_error_at", "drop_first_at", "negative_queue", "long_task_name"])
async def test_an_insane_heartbeat_is_invalid_argument(cloud: Cloud, heartbeat: pb.HeartbeatRequest) -> None:
    identity = await cloud.enrol(name="insane-heartbeat")
    async with aio.secure_channel(cloud.server.target, creds(cloud, identity)) as ch:
        stub = pb_grpc.AgentChannelStub(ch)
        with pytest.raises(aio.AioRpcError) as err:
            await stub.Heartbeat(heartbeat, timeout=10)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
        await stub.Heartbeat(pb.HeartbeatRequest(sent_at_ms=0), timeout=10)  # a sane one still answers
