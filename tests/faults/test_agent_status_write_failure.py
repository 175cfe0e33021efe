"""A status file the agent cannot write (``chattr +i status.json``) is a visible task error: the cloud's
view of the agent's health (from its heartbeat) shows the ``status`` task degraded with the reason,
not healthy with no last error; once the file is writable again the task is back to running."""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path
from typing import Any

from agent.channel.enroll import enroll
from lab.catalog import PRINTERS
from printgate.cli.demo_system import DemoSystem
from printgate.store.agent_health import health_of_agents
from tests.faults.agent_proc import start_agent, stop, wait_status, write_config


async def _status_task(system: DemoSystem, agent_id: str) -> dict[str, Any] | None:
    async with system.cloud.db.session() as s:
        health = (await health_of_agents(s, [agent_id])).get(agent_id)
    return next((t for t in health.tasks if t.get("name") == "status"), None) if health else None


async def _wait_task(system: DemoSystem, agent_id: str, pred: Any, what: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    task: dict[str, Any] | None = None
    while time.monotonic() < deadline:
        task = await _status_task(system, agent_id)
        if task is not None and pred(task):
            return task
        await asyncio.sleep(0.5)
    raise AssertionError(f"{what}: last seen {task}")


async def test_a_status_file_that_cannot_be_written_shows_in_the_heartbeat(tmp_path: Path) -> None:
    async with DemoSystem(tmp_path / "cloud", log_level="warning", with_agent=False) as system:
        agent_dir = tmp_path / "agent"
        identity = await enroll(system.cloud.channel.enrol_target, system.enrolment_token, agent_dir,
                                ca_cert_pem=system.cloud.ca.cert_pem)
        agent = system.agent_settings(agent_dir).to_config()
        agent.update(targets=[p.ip for p in PRINTERS[:1]], scan_interval_seconds=3600.0)
        config = write_config(tmp_path / "agent.toml", agent)
        status_json = agent_dir / "status.json"
        proc = await start_agent(config, tmp_path / "agent.log")
        try:
            await wait_status(config, lambda s: s.get("running") and s.get("channel") == "connected",
                              timeout=60, what="agent connected")
            await _wait_task(system, identity.agent_id, lambda t: t["state"] == "running", "status task running")
            subprocess.run(["chattr", "+i", str(status_json)], check=True)
            task = await _wait_task(system, identity.agent_id, lambda t: t["state"] != "running",
                                    "the status task shown failing in the cloud")
            assert task["state"] == "degraded"
            assert "cannot be written" in (task.get("last_error") or ""), task
            subprocess.run(["chattr", "-i", str(status_json)], check=True)
            await _wait_task(system, identity.agent_id, lambda t: t["state"] == "running",
                             "the status task back to running")
        finally:
            subprocess.run(["chattr", "-i", str(status_json)], check=False)
            await stop(proc)
