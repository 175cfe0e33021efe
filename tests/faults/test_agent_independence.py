"""The agent on its own: restarted while the cloud is down it polls from its own inventory, SIGTERM
stops it within its deadline, its bounded queue drops the oldest readings and counts them, and when
the cloud is back every kept reading arrives exactly once (a SIGKILL mid-upload included) and every
dropped one is reported: readings taken = stored + dropped-and-reported."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from agent.channel.enroll import enroll
from lab.catalog import PRINTERS
from lab.ports import free_tcp_port
from printgate.cli.demo_system import DemoSystem
from printgate.store.models.agent_health import ReadingsDropRow
from printgate.store.models.readings import ReadingRow
from tests.faults.agent_proc import (
    dropped_count,
    queued_ids,
    start_agent,
    status,
    status_text,
    stop,
    wait_status,
    write_config,
)

DEADLINE = 4.0


async def _cloud_ids(system: DemoSystem) -> list[str]:
    async with system.cloud.db.session() as s:
        return list((await s.execute(select(ReadingRow.id))).scalars())


async def test_agent_restarted_without_cloud_polls_stops_in_time_and_delivers_exactly_once(tmp_path: Path) -> None:
    async with DemoSystem(tmp_path / "cloud", log_level="warning", with_agent=False) as system:
        agent_dir = tmp_path / "agent"
        await enroll(system.cloud.channel.enrol_target, system.enrolment_token, agent_dir,
                     ca_cert_pem=system.cloud.ca.cert_pem)
        agent = system.agent_settings(agent_dir).to_config()
        agent.update(targets=[p.ip for p in PRINTERS[:3]], counters_interval_seconds=1.0,
                     supplies_interval_seconds=1.0, alerts_interval_seconds=1.0,
                     upload_interval_seconds=0.5, scan_interval_seconds=3600.0,
                     stop_deadline_seconds=DEADLINE)
        online = write_config(tmp_path / "online.toml", agent)
        metrics_port = free_tcp_port()
        offline = write_config(tmp_path / "offline.toml",  # nothing listens there; a small queue
                               {**agent, "cloud_grpc": f"127.0.0.1:{free_tcp_port()}", "queue_max_readings": 9,
                                "metrics_port": metrics_port})
        log = tmp_path / "agent.log"

        # 1. a first run with the cloud there: the agent learns its printers
        proc = await start_agent(online, log)
        try:
            await wait_status(online, lambda s: len(s.get("printers") or []) == 3 and s.get("last_upload"),
                              timeout=90, what="printers found and readings uploaded")
        finally:
            await stop(proc)

        # 2. restarted while the cloud is unreachable: it polls at once, queues, says so
        proc = await start_agent(offline, log)
        try:
            st = await wait_status(offline, lambda s: (s.get("queue_length") or 0) >= 9 and s.get("dropped"),
                                   timeout=30, what="readings polled, queued and overflowing without the cloud")
            assert st["running"] and st["channel"] != "ready"
            assert st["oldest_queued"] is not None
            names = {t["name"] for t in st["tasks"]}
            assert {"scan", "commands", "heartbeat", "status", "readings-upload"} <= names
            async with httpx.AsyncClient(timeout=10) as client:  # the agent's own Prometheus endpoint
                scraped = (await client.get(f"http://127.0.0.1:{metrics_port}/metrics")).text
            values = {(s.name, tuple(sorted(s.labels.items()))): s.value
                      for family in text_string_to_metric_families(scraped) for s in family.samples}
            assert values[("printgate_agent_queue_length", ())] >= 9
            assert values[("printgate_agent_readings_dropped", (("reason", "agent queue overflow"),))] > 0
            text = await status_text(offline)  # what an operator reads
            assert "task heartbeat" in text and "task readings-upload" in text
            assert "agent queue overflow" in text and "oldest_queued" in text
        finally:
            took = await stop(proc)
        assert proc.returncode == 0
        stopped = await status(offline)
        assert stopped["running"] is False and stopped["channel"] == "agent not running"
        assert took < DEADLINE + 2.0, f"SIGTERM with the cloud down took {took:.1f}s (deadline {DEADLINE}s)"
        kept = queued_ids(agent_dir)
        assert len(kept) >= 9  # the bound, plus the sealed batch in flight (never dropped)
        dropped = dropped_count(agent_dir)
        assert dropped > 0

        # 3. the cloud is back: every kept reading arrives, none twice, even with a SIGKILL mid-upload
        before = set(await _cloud_ids(system))
        assert not kept & before
        proc = await start_agent(online, log)
        try:
            async with asyncio.timeout(60):
                while not kept & set(await _cloud_ids(system)):
                    await asyncio.sleep(0.05)
        finally:
            proc.kill()  # SIGKILL: a batch may be delivered and not yet acknowledged in the queue file
            await proc.wait()
        proc = await start_agent(online, log)
        try:
            async with asyncio.timeout(60):
                while not kept <= set(await _cloud_ids(system)):
                    await asyncio.sleep(0.5)
        finally:
            await stop(proc)
        async with system.cloud.db.session() as s:
            rows = (await s.execute(select(func.count(), func.count(ReadingRow.id.distinct())))).one()
            stored_after = set((await s.execute(select(ReadingRow.id))).scalars())
            reported = {(d.ip, d.kind, d.reason): d.count for d in (await s.execute(select(ReadingsDropRow))).scalars()}
        assert rows[0] == rows[1]  # no duplicates
        assert kept <= stored_after
        assert sum(reported.values()) == dropped  # every reading taken offline is stored or reported lost
        assert {reason for _, _, reason in reported} == {"agent queue overflow"}
