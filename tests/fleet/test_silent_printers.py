"""A printer that times out in one sweep stays polled (issue 13: fleet data a dealer can trust).

Seen in ``benchmarks/agent_footprint.py``: under load, 11 of 200 simulated printers timed out in
one sweep and the agent stopped polling them until the next sweep. ``AgentRuntime.scan_once``
now keeps polling a followed printer through up to 2 silent sweeps in a row; one that answers
as something else, or is no longer scanned, is dropped at once.
"""

from __future__ import annotations

from collections.abc import Sequence

from agent.runtime import AgentRuntime
from printgate.domain import DeviceIdentity, DiscoveryResult, DiscoveryStatus
from printgate.wire import agent_pb2 as pb

IP = "10.0.0.7"
PRINTER = DiscoveryResult(IP, DiscoveryStatus.PRINTER, "v2c:public", DeviceIdentity(serial="CN4711", model="M130"))
SILENT = DiscoveryResult(IP, DiscoveryStatus.UNREACHABLE, "no SNMP answer within 1.0s x2")
EXCLUDED = DiscoveryResult(IP, DiscoveryStatus.EXCLUDED, "answers SNMP but has no Printer-MIB")
OTHER = DiscoveryResult("10.0.0.8", DiscoveryStatus.PRINTER, "v2c:public", DeviceIdentity(serial="X1"))


class Channel:
    state = "connected"

    def __init__(self) -> None:
        self.inventories: list[list[str]] = []

    async def upload_inventory(self, devices: Sequence[pb.DiscoveredDevice]) -> None:
        self.inventories.append([d.ip for d in devices if d.status == pb.DEVICE_STATUS_PRINTER])


class Follower:
    last_upload = None

    def __init__(self) -> None:
        self.followed: list[list[str]] = []

    async def follow_discovered(self, printers: Sequence[DiscoveryResult]) -> None:
        self.followed.append(sorted(p.ip for p in printers))

    async def pending(self) -> int:
        return 0


async def _no_ews(_ip: str) -> None:
    return None


async def _no_tunnel(*_a: object) -> None:
    raise AssertionError("no tunnel in this test")


def runtime_over(sweeps: list[list[DiscoveryResult]]) -> tuple[AgentRuntime, Follower, Channel]:
    queue = list(sweeps)

    async def discover() -> list[DiscoveryResult]:
        return queue.pop(0)

    follower, channel = Follower(), Channel()
    rt = AgentRuntime(channel=channel, discover=discover, open_tunnel=_no_tunnel,  # type: ignore[arg-type]
                      monitoring=follower, find_ews_endpoint=_no_ews)
    return rt, follower, channel


async def test_a_printer_silent_in_a_sweep_or_two_is_still_polled_the_third_drops_it() -> None:
    rt, follower, channel = runtime_over([[PRINTER, OTHER], [SILENT, OTHER], [SILENT, OTHER], [SILENT, OTHER],
                                          [PRINTER, OTHER]])
    for _ in range(5):
        await rt.scan_once()
    assert follower.followed == [[IP, OTHER.ip], [IP, OTHER.ip], [IP, OTHER.ip], [OTHER.ip], [IP, OTHER.ip]]
    # the cloud hears only what answered (its last seen stays true)
    assert channel.inventories == [[IP, OTHER.ip], [OTHER.ip], [OTHER.ip], [OTHER.ip], [IP, OTHER.ip]]


async def test_a_printer_answering_as_something_else_or_gone_from_the_targets_is_dropped_at_once() -> None:
    rt, follower, _ = runtime_over([[PRINTER, OTHER], [EXCLUDED, OTHER], [PRINTER, OTHER], [OTHER]])
    for _ in range(4):
        await rt.scan_once()
    assert follower.followed == [[IP, OTHER.ip], [OTHER.ip], [IP, OTHER.ip], [OTHER.ip]]
