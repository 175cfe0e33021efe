"""A printer silent for one sweep stays followed and polled (issue 14, a14 ``silent_sweep2.sh``).

The real agent process (``printgate agent run``) against the demo's snmpsim, frozen with SIGSTOP
for one full sweep: the sweep finds nobody, yet the agent keeps following the printers it polled
(``agent.printers_not_answering``) and, once snmpsim runs again, polls them before the next sweep.
Before the fix ``AgentAssembly.discover`` dropped the silent addresses, so the runtime never saw
them and stopped polling every printer until a later sweep found it again.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from agent.channel.enroll import enroll
from lab.catalog import PRINTERS
from printgate.cli.demo_system import DemoSystem
from printgate.store.models.readings import ReadingRow
from tests.faults.agent_proc import start_agent, stop, wait_status, write_config

SCAN = 8.0


def _events(log: Path, since: int, name: str) -> list[dict[str, Any]]:
    out = []
    for line in log.read_text(errors="replace").splitlines()[since:]:
        if line.startswith("{") and f'"{name}"' in line:
            event = json.loads(line)
            if event.get("event") == name:
                out.append(event)
    return out


async def _next_event(log: Path, since: int, name: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = _events(log, since, name)
        if found:
            return found[0]
        await asyncio.sleep(0.1)
    raise AssertionError(f"no {name} within {timeout}s; log tail:\n{log.read_text()[-3000:]}")


async def test_printers_silent_for_one_sweep_stay_followed_and_polled(tmp_path: Path) -> None:
    async with DemoSystem(tmp_path / "cloud", log_level="warning", with_agent=False) as system:
        agent_dir = tmp_path / "agent"
        await enroll(system.cloud.channel.enrol_target, system.enrolment_token, agent_dir,
                     ca_cert_pem=system.cloud.ca.cert_pem)
        ips = sorted(p.ip for p in PRINTERS[:3])
        agent = system.agent_settings(agent_dir).to_config()
        agent.update(targets=ips, counters_interval_seconds=1.0, supplies_interval_seconds=1.0,
                     alerts_interval_seconds=1.0, upload_interval_seconds=0.5, scan_interval_seconds=SCAN,
                     snmp_timeout=0.5, snmp_retries=0, stop_deadline_seconds=4.0)
        config = write_config(tmp_path / "agent.toml", agent)
        log = tmp_path / "agent.log"
        responders = [r.proc for r in system.snmp._responders if r.proc is not None]
        assert responders
        proc = await start_agent(config, log)
        try:
            await wait_status(config, lambda s: len(s.get("printers") or []) == 3 and s.get("last_upload"),
                              timeout=90, what="printers found and readings uploaded")
            # freeze snmpsim right after a sweep, for the whole of the next one
            mark = len(log.read_text().splitlines())
            await _next_event(log, mark, "agent.scan_reported", SCAN + 30)
            mark = len(log.read_text().splitlines())
            for r in responders:
                os.kill(r.pid, signal.SIGSTOP)
            try:
                silent_sweep = await _next_event(log, mark, "agent.scan_reported", SCAN + 30)
            finally:
                for r in responders:
                    os.kill(r.pid, signal.SIGCONT)
            thawed = datetime.now(UTC)
            after_thaw = len(log.read_text().splitlines())

            warned = _events(log, mark, "agent.printers_not_answering")
            assert warned and sorted(warned[0]["printers"]) == ips, warned
            following = _events(log, mark, "monitoring.following")
            assert all(f["printers"] == 3 for f in following), following  # never 0: still followed
            assert silent_sweep["printers"] == 3, silent_sweep

            # polled again as soon as snmpsim answers, before the next sweep re-finds them
            next_sweep = await _next_event(log, after_thaw, "agent.scan_reported", SCAN + 30)
            swept_at = datetime.fromisoformat(next_sweep["timestamp"].replace("Z", "+00:00"))
            async with asyncio.timeout(30):
                while True:
                    async with system.cloud.db.session() as s:
                        rows = (await s.execute(select(ReadingRow.ip, ReadingRow.taken_at)
                                                .where(ReadingRow.taken_at > thawed))).all()
                    early = {ip for ip, taken in rows if taken < swept_at}
                    if early == set(ips):
                        break
                    await asyncio.sleep(0.5)
        finally:
            await stop(proc)
