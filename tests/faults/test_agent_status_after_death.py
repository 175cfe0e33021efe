"""After the agent dies (SIGKILL: no chance to update its status file), ``printgate agent status`` must
not present its tasks as running: they are the last known state of an agent that is not running."""

from __future__ import annotations

import asyncio
from pathlib import Path

from agent.channel.enroll import enroll
from lab.catalog import PRINTERS
from printgate.cli.demo_system import DemoSystem
from tests.faults.agent_proc import start_agent, status, status_text, wait_status, write_config


async def test_status_of_a_killed_agent_shows_tasks_as_last_known(tmp_path: Path) -> None:
    async with DemoSystem(tmp_path / "cloud", log_level="warning", with_agent=False) as system:
        agent_dir = tmp_path / "agent"
        await enroll(system.cloud.channel.enrol_target, system.enrolment_token, agent_dir,
                     ca_cert_pem=system.cloud.ca.cert_pem)
        agent = system.agent_settings(agent_dir).to_config()
        agent.update(targets=[p.ip for p in PRINTERS[:1]], scan_interval_seconds=3600.0)
        config = write_config(tmp_path / "agent.toml", agent)
        proc = await start_agent(config, tmp_path / "agent.log")
        try:
            await wait_status(config, lambda s: s.get("running") and any(
                t.get("state") == "running" for t in s.get("tasks") or []), timeout=60, what="tasks running")
        finally:
            proc.kill()
            await asyncio.wait_for(proc.wait(), 30)

        after = await status(config)
        text = await status_text(config)
    assert after["running"] is False and after["healthy"] is False
    assert after["tasks"], "the last known tasks are still shown"
    assert not [t for t in after["tasks"] if t.get("state") == "running"], after["tasks"]
    assert all("last known, agent not running" in t["state"] for t in after["tasks"]), after["tasks"]
    task_lines = [line for line in text.splitlines() if line.strip().startswith("task ")]
    assert task_lines and all("last known, agent not running" in line for line in task_lines), text
