"""A full disk under a running agent (a tiny tmpfs the test mounts for its data dir): it degrades
(new readings refused and counted, nothing dies, status and heartbeat say so) and recovers by itself.

The disk is filled when the queue needs new space (``fill_under_queue``): filled at a random moment,
the queue may go on storing in its already allocated WAL for a while, which is right but made the
test depend on timing."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import func, select

from agent.channel.enroll import enroll
from lab.catalog import PRINTERS
from printgate.cli.demo_system import DemoSystem
from printgate.store.agent_health import health_of_agents
from printgate.store.models.readings import ReadingRow
from tests.faults.agent_proc import start_agent, stop, wait_status, write_config
from tests.faults.conftest import fill_under_queue


async def test_full_disk_degrades_visibly_and_recovers_without_restart(tmp_path: Path, tiny_disk: Path) -> None:
    async with DemoSystem(tmp_path / "cloud", log_level="warning", with_agent=False) as system:
        agent_dir = tiny_disk / "agent"
        identity = await enroll(system.cloud.channel.enrol_target, system.enrolment_token, agent_dir,
                                ca_cert_pem=system.cloud.ca.cert_pem)
        agent = system.agent_settings(agent_dir).to_config()
        agent.update(targets=[p.ip for p in PRINTERS[:3]], counters_interval_seconds=1.0,
                     supplies_interval_seconds=1.0, alerts_interval_seconds=1.0,
                     upload_interval_seconds=0.5, scan_interval_seconds=3600.0)
        config = write_config(tmp_path / "agent.toml", agent)

        async def cloud_health() -> tuple[str, int]:
            async with system.cloud.db.session() as s:
                h = (await health_of_agents(s, [identity.agent_id])).get(identity.agent_id)
            return (h.degraded, h.dropped) if h else ("", 0)

        proc = await start_agent(config, tmp_path / "agent.log")
        try:
            before = await wait_status(config, lambda s: s.get("last_upload") and len(s["printers"]) == 3,
                                       timeout=90, what="agent uploading")
            filler = fill_under_queue(tiny_disk, agent_dir / "readings.sqlite")
            full = await wait_status(config, lambda s: s.get("degraded") and (s.get("dropped") or 0) >= 3,
                                     timeout=60, what="degraded: disk full")
            assert "disk full" in full["degraded"]
            assert full["running"] and all(t["state"] == "running" for t in full["tasks"]), full["tasks"]
            assert {d["reason"] for d in full["drops"]} == {"agent disk full"}
            async with asyncio.timeout(30):  # the heartbeat says so at once
                while "disk full" not in (await cloud_health())[0]:
                    await asyncio.sleep(0.5)

            filler.unlink()  # space returns: no restart
            back = await wait_status(
                config, lambda s: not s.get("degraded") and s.get("queue_length") == 0
                and s.get("last_upload", "") > full["last_upload"], timeout=60, what="recovered and uploading")
            assert back["last_upload"] > before["last_upload"]
            async with asyncio.timeout(30):
                while (health := await cloud_health())[0] or health[1] < back["dropped"]:
                    await asyncio.sleep(0.5)
        finally:
            took = await stop(proc)
        assert proc.returncode == 0 and took < 12
        async with system.cloud.db.session() as s:
            total, distinct = (await s.execute(select(func.count(), func.count(ReadingRow.id.distinct())))).one()
        assert total == distinct > 0
