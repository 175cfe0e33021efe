"""At start the agent polls the printers of its own inventory file before (and whether or not) a
sweep or the cloud answers; a sweep's result is saved for the next start."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from agent.inventory_file import load_inventory, save_inventory
from agent.runtime import AgentRuntime, inventory_entry
from printgate.domain import DeviceIdentity, DiscoveryResult, DiscoveryStatus
from printgate.wire import agent_pb2 as pb

PRINTER = DiscoveryResult("10.0.0.7", DiscoveryStatus.PRINTER, credential="v2c:public",
                          identity=DeviceIdentity(serial="CN4711", model="M130"))


class CloudDown:
    """A channel whose every call waits forever (the cloud is away)."""

    state = "connecting"

    async def upload_inventory(self, devices: Sequence[pb.DiscoveredDevice]) -> None:
        await asyncio.Event().wait()

    async def commands(self) -> AsyncIterator[Any]:
        await asyncio.Event().wait()
        yield None

    async def report_result(self, command_id: str, **kw: Any) -> None:
        await asyncio.Event().wait()

    async def heartbeat(self, **kw: Any) -> int:
        await asyncio.Event().wait()
        return 0

    def renewal_due(self) -> bool:
        return False

    async def renew_certificate(self) -> Any:
        return None


class Follower:
    last_upload: datetime | None = None

    def __init__(self) -> None:
        self.followed: list[list[str]] = []

    async def follow_discovered(self, printers: Sequence[DiscoveryResult]) -> None:
        self.followed.append([f"{p.ip}/{p.credential}/{p.identity.serial if p.identity else None}" for p in printers])

    async def pending(self) -> int:
        return 0


async def _no_tunnels(*_a: object) -> Any:
    raise AssertionError("no tunnel in this test")


async def test_polling_starts_from_the_saved_inventory_while_sweep_and_cloud_hang(tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.json"
    save_inventory(inventory, [PRINTER], [inventory_entry(PRINTER, None)])

    async def sweep_never_ends() -> list[DiscoveryResult]:
        await asyncio.Event().wait()
        return []

    follower = Follower()
    runtime = AgentRuntime(channel=CloudDown(), discover=sweep_never_ends, open_tunnel=_no_tunnels,  # type: ignore[arg-type]
                           monitoring=follower, inventory_path=inventory, status_path=tmp_path / "status.json")
    async with runtime:
        assert follower.followed == [["10.0.0.7/v2c:public/CN4711"]]
        assert [p.serial for p in runtime.printers] == ["CN4711"]


async def test_a_sweep_is_followed_and_saved_even_when_the_upload_hangs(tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.json"

    async def sweep() -> list[DiscoveryResult]:
        return [PRINTER]

    async def no_ews(_ip: str) -> None:
        return None

    follower = Follower()
    runtime = AgentRuntime(channel=CloudDown(), discover=sweep, open_tunnel=_no_tunnels,  # type: ignore[arg-type]
                           monitoring=follower, inventory_path=inventory, find_ews_endpoint=no_ews)
    async with runtime:
        async with asyncio.timeout(5):
            while not follower.followed:
                await asyncio.sleep(0.01)
    assert follower.followed == [["10.0.0.7/v2c:public/CN4711"]]
    saved = load_inventory(inventory)
    assert [(p.ip, p.credential) for p in saved.printers] == [("10.0.0.7", "v2c:public")]
