"""Discovery on demand: a signed "rescan now" over the real gRPC channel wakes the agent's sweep,
and a printer that appears between sweeps is announced without waiting for the next one."""

from __future__ import annotations

import asyncio

from agent.channel.grpc_client import GrpcChannel
from agent.runtime import AgentRuntime
from gateway.agent_commands import AgentCommandSender
from printgate.domain import DeviceIdentity, DiscoveryResult, DiscoveryStatus
from tests.channel.conftest import Cloud
from tests.snmp.conftest import eventually

HOUR = 3600.0
PRINTER = DiscoveryResult("127.0.20.15", DiscoveryStatus.PRINTER, "answers Printer-MIB (RFC 3805) objects",
                          DeviceIdentity(serial="VNCRC48198", model="HP LaserJet MFP M130nw"), "v2c:community 1")


async def no_tunnels(*_args: object) -> object:
    raise AssertionError("no tunnel is opened in this test")


async def no_ews(_ip: str) -> None:
    return None


async def test_a_signed_rescan_command_sweeps_the_site_at_once(cloud: Cloud) -> None:
    identity = await cloud.enrol(name="rescan")
    sweeps: list[float] = []

    async def discover() -> list[DiscoveryResult]:
        sweeps.append(asyncio.get_running_loop().time())
        return [PRINTER] if len(sweeps) > 1 else []

    async with GrpcChannel(cloud.server.target, identity) as ch:
        runtime = AgentRuntime(channel=ch, discover=discover, open_tunnel=no_tunnels,  # type: ignore[arg-type]
                               find_ews_endpoint=no_ews, scan_interval_s=HOUR, heartbeat_s=HOUR)
        async with runtime:
            await ch.wait_connected(10)
            assert await eventually(lambda: _async(len(sweeps) == 1))
            sent = await AgentCommandSender(cloud.hub).rescan(identity.agent_id, requested_by="tech@dealer.test")
            assert await eventually(lambda: _async(len(sweeps) == 2), timeout=10)  # not an hour later
            assert await eventually(lambda: _async(any(r.command_id == sent and r.ok for _, r in cloud.recorder.results)))
    inventories = [d for a, d in cloud.recorder.inventories if a == identity.agent_id]
    assert [len(d) for d in inventories] == [0, 1] and inventories[1][0].ip == PRINTER.ip


async def test_a_new_printer_is_announced_before_the_next_sweep(cloud: Cloud) -> None:
    identity = await cloud.enrol(name="watch")
    looks = 0

    async def discover() -> list[DiscoveryResult]:
        nonlocal looks
        looks += 1
        return [PRINTER] if looks >= 3 else []  # plugged in after two looks

    async with GrpcChannel(cloud.server.target, identity) as ch:
        runtime = AgentRuntime(channel=ch, discover=discover, open_tunnel=no_tunnels,  # type: ignore[arg-type]
                               find_ews_endpoint=no_ews, scan_interval_s=HOUR, heartbeat_s=HOUR,
                               new_device_watch_s=0.2)
        async with runtime:
            await ch.wait_connected(10)
            assert await eventually(lambda: _async(
                any(a == identity.agent_id and len(d) == 1 for a, d in cloud.recorder.inventories)), timeout=10)
    announced = [d for a, d in cloud.recorder.inventories if a == identity.agent_id]
    assert announced[-1][0].ip == PRINTER.ip
    assert len(announced) == 2  # the first sweep (empty) and the one the new printer brought; no upload per look


async def _async(value: bool) -> bool:
    return value
