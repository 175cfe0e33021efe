"""The cloud stopped and started again (real processes) under a running agent: meanwhile the
agent's upload and heartbeat tasks say "waiting for cloud" (healthy, no error, no restart), keep
the readings queued, and resume by themselves once the cloud is back (all queued readings sent)."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

from agent.channel.enroll import enroll
from lab.catalog import PRINTERS
from lab.ports import free_tcp_port
from tests.faults.agent_proc import start_agent, stop, wait_status, write_config
from tests.faults.test_cloud_crash import _cloud


def _task(status: dict[str, Any], name: str) -> dict[str, Any]:
    found = [t for t in status.get("tasks") or [] if t["name"] == name]
    return found[0] if found else {}


async def test_upload_waits_for_a_restarting_cloud_and_resumes(tmp_path: Path) -> None:
    base = Path(tempfile.mkdtemp(prefix="pgwait-")) / "cloud"  # short: the gateway's Unix sockets live below
    base.mkdir()
    ports = {k: free_tcp_port() for k in ("portal", "relay_port", "proxy_port", "grpc_port", "enrol_port")}
    printer = PRINTERS[0]
    first, facts = await _cloud(base, ports)
    agent_dir = base.parent / "agent"
    await enroll(facts["enrol"], facts["token"], agent_dir, ca_cert_pem=Path(facts["ca"]).read_bytes())
    config = write_config(tmp_path / "agent.toml", {
        "cloud_grpc": facts["grpc"], "data_dir": str(agent_dir), "targets": [printer.ip],
        "snmp_port": facts["snmp_port"], "ews_candidates": [f"{facts['ews_port']}/http"],
        "snmp_timeout": 1.0, "snmp_retries": 1, "stop_deadline_seconds": 5.0,
        "supplies_interval_seconds": 1.0, "upload_interval_seconds": 0.5,
    })
    agent = await start_agent(config, base.parent / "agent.log")
    second = None
    try:
        up = await wait_status(config, lambda s: s.get("channel") == "connected" and s.get("last_upload"),
                               timeout=90, what="readings uploaded")
        first.terminate()  # the cloud goes away (as for an upgrade)
        await first.wait()
        down = await wait_status(
            config, lambda s: (s.get("queue_length") or 0) > 0 and _task(s, "readings-upload").get("state") == "waiting",
            timeout=60, what="the upload task waiting for the cloud with readings queued")
        for name in ("readings-upload", "heartbeat"):
            task = _task(down, name)
            assert task["state"] == "waiting" and task["healthy"], task
            assert task["waiting_for"].startswith("waiting for cloud"), task
            assert task["restarts"] == 0, task
        assert down["last_upload"] == down["last_upload"] and down["queue_length"] > 0

        second, _ = await _cloud(base, ports)  # the same cloud back
        back = await wait_status(
            config, lambda s: s.get("channel") == "connected" and s.get("queue_length") == 0
            and s.get("last_upload") != down["last_upload"]
            and _task(s, "readings-upload").get("state") == "running" and _task(s, "heartbeat").get("state") == "running",
            timeout=90, what="queued readings uploaded after the cloud came back")
        assert all(t["restarts"] == 0 for t in back["tasks"]), back["tasks"]
        assert up["last_upload"] < back["last_upload"]
    finally:
        await stop(agent)
        for proc in (first, second):
            if proc is not None and proc.returncode is None:
                proc.kill()
                await proc.wait()
        await asyncio.sleep(0)
