"""A flapping disk under a running agent (a tiny tmpfs the test mounts): space filled and freed
again and again. Each time it degrades and recovers by itself (no task restarted, nothing stuck),
every reading it queued reaches the cloud once, and SIGTERM while the disk is full still stops it
within its stop deadline. Each fill comes when the queue needs new space (``fill_under_queue``)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select

from agent.channel.enroll import enroll
from lab.catalog import PRINTERS
from printgate.cli.demo_system import DemoSystem
from printgate.store.models.readings import ReadingRow
from tests.faults.agent_proc import start_agent, stop, wait_status, write_config
from tests.faults.conftest import fill_under_queue

CYCLES = 2
DEADLINE = 4.0


async def test_disk_filled_and_freed_repeatedly_and_stopped_while_full(tmp_path: Path, tiny_disk: Path) -> None:
    async with DemoSystem(tmp_path / "cloud", log_level="warning", with_agent=False) as system:
        agent_dir = tiny_disk / "agent"
        await enroll(system.cloud.channel.enrol_target, system.enrolment_token, agent_dir,
                     ca_cert_pem=system.cloud.ca.cert_pem)
        agent = system.agent_settings(agent_dir).to_config()
        agent.update(targets=[p.ip for p in PRINTERS[:2]], counters_interval_seconds=1.0,
                     supplies_interval_seconds=1.0, alerts_interval_seconds=1.0,
                     upload_interval_seconds=0.5, scan_interval_seconds=3600.0, stop_deadline_seconds=DEADLINE)
        config = write_config(tmp_path / "agent.toml", agent)
        proc = await start_agent(config, tmp_path / "agent.log")
        took = None
        try:
            last = await wait_status(config, lambda s: s.get("last_upload") and len(s["printers"]) == 2,
                                     timeout=90, what="agent uploading")
            for cycle in range(CYCLES):
                filler = fill_under_queue(tiny_disk, agent_dir / "readings.sqlite")
                dropped = last.get("dropped") or 0
                full = await wait_status(config, lambda s, d=dropped: s.get("degraded") and (s.get("dropped") or 0) > d,
                                         timeout=60, what=f"cycle {cycle}: degraded")
                assert all(t["restarts"] == 0 for t in full["tasks"]), (cycle, full["tasks"])
                filler.unlink()
                last = await wait_status(
                    config, lambda s, f=full: not s.get("degraded") and s.get("queue_length") == 0
                    and s.get("last_upload", "") > f["last_upload"], timeout=60, what=f"cycle {cycle}: recovered")
                assert all(t["restarts"] == 0 and t["state"] == "running" for t in last["tasks"]), (cycle, last["tasks"])
            fill_under_queue(tiny_disk, agent_dir / "readings.sqlite")  # stopped while full: within the deadline, cleanly
            await wait_status(config, lambda s: s.get("degraded"), timeout=60, what="degraded before the stop")
            took = await stop(proc)
        finally:
            if took is None:
                await stop(proc)
        assert proc.returncode == 0 and took < DEADLINE + 2.0, took
        async with system.cloud.db.session() as s:
            total, distinct = (await s.execute(select(func.count(), func.count(ReadingRow.id.distinct())))).one()
        assert total == distinct > 0
