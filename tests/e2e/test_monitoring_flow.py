"""Printer monitoring end to end: agent polls lab printers, queues, uploads; cloud stores and shows."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import httpx

from lab.catalog import PRINTERS, by_name
from printgate.cli.demo_system import DEMO_DEALER, DemoSystem
from printgate.store import fleet
from printgate.store.readings import count_readings

FAST = {
    "counters_interval_seconds": 2.0, "supplies_interval_seconds": 2.0,
    "alerts_interval_seconds": 2.0, "upload_interval_seconds": 1.0,
}
PRINTGATE = str(Path(sys.executable).with_name("printgate"))


async def test_polled_readings_reach_the_cloud_and_the_fleet_api(tmp_path: Path) -> None:
    async with DemoSystem(tmp_path, log_level="warning", agent_overrides=FAST) as system:
        await system.wait_for_devices(minimum=len(PRINTERS), timeout=90)
        agent_id = system.agent.identity.agent_id
        scope = fleet.TenantScope(dealer_id=DEMO_DEALER.id)

        async def every_printer_reported() -> bool:  # printers with vendor counters answer a little later
            async with system.cloud.db.session() as s:
                return all(d.last_reading_at is not None for d in await fleet.fleet_devices(s, scope))

        async with asyncio.timeout(120):
            while (await count_readings(system.cloud.db, agent_id) < 2 * len(PRINTERS)
                   or not await every_printer_reported()):
                await asyncio.sleep(0.5)

        # Every reading landed on its device; supplies of a real recording are current.
        device = await system.device_at(by_name("jetdirect_m130nw").ip)
        async with system.cloud.db.session() as s:
            supplies = await fleet.current_supplies(s, device.id)
            listed = await fleet.fleet_devices(s, scope)
        assert supplies, "no current supplies for the HP M130nw"
        assert all(d.last_reading_at is not None for d in listed)

        # The queue drained and the agent says so in its status file.
        async with asyncio.timeout(30):
            while True:
                status = json.loads((system.base_dir / "agent" / "status.json").read_text())
                if status["last_upload"] is not None:
                    break
                await asyncio.sleep(0.5)
        assert len(status["printers"]) == len(PRINTERS)
        proc = await asyncio.create_subprocess_exec(
            PRINTGATE, "agent", "status", "--data-dir", str(system.base_dir / "agent"), "--json",
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await proc.communicate()
        assert json.loads(out)["agent_id"] == agent_id

        # The portal's fleet API answers for the dealer (HTTP, real app).
        async with httpx.AsyncClient(base_url=system.portal_url) as client:
            anonymous = await client.get("/api/fleet/devices")
        assert anonymous.status_code == 401
