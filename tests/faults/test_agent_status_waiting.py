"""``printgate agent status`` while the cloud is away (a real cloud process stopped under a real
agent): the human form says on each waiting task's line what it waits for ("waiting for cloud
(channel ...)"), not a bare "waiting", and the agent stays healthy with no error; ``--json`` gives
the same as fields (state "waiting", waiting_for, healthy, no last_error)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from agent.channel.enroll import enroll
from lab.catalog import PRINTERS
from lab.ports import free_tcp_port
from tests.faults.agent_proc import (
    start_agent,
    status,
    status_text,
    stop,
    wait_status,
    write_config,
)
from tests.faults.test_cloud_crash import _cloud


def _task(s: dict[str, Any], name: str) -> dict[str, Any]:
    return next((t for t in s.get("tasks") or [] if t["name"] == name), {})


async def test_agent_status_reads_well_while_waiting_for_the_cloud(tmp_path: Path) -> None:
    base = Path(tempfile.mkdtemp(prefix="pgstw-")) / "cloud"  # short: the gateway's Unix sockets live below
    base.mkdir()
    ports = {k: free_tcp_port() for k in ("portal", "relay_port", "proxy_port", "grpc_port", "enrol_port")}
    cloud, facts = await _cloud(base, ports)
    agent_dir = base.parent / "agent"
    await enroll(facts["enrol"], facts["token"], agent_dir, ca_cert_pem=Path(facts["ca"]).read_bytes())
    config = write_config(tmp_path / "agent.toml", {
        "cloud_grpc": facts["grpc"], "data_dir": str(agent_dir), "targets": [PRINTERS[0].ip],
        "snmp_port": facts["snmp_port"], "ews_candidates": [f"{facts['ews_port']}/http"],
        "snmp_timeout": 1.0, "snmp_retries": 1, "stop_deadline_seconds": 5.0,
        "supplies_interval_seconds": 1.0, "upload_interval_seconds": 0.5,
    })
    agent = await start_agent(config, base.parent / "agent.log")
    try:
        await wait_status(config, lambda s: s.get("channel") == "connected" and s.get("last_upload"),
                          timeout=90, what="readings uploaded")
        cloud.terminate()
        await cloud.wait()
        await wait_status(config, lambda s: _task(s, "readings-upload").get("state") == "waiting"
                          and _task(s, "heartbeat").get("state") == "waiting", timeout=60, what="tasks waiting")
        as_json = await status(config)
        text = await status_text(config)
    finally:
        await stop(agent)
        if cloud.returncode is None:
            cloud.kill()
            await cloud.wait()

    for name in ("readings-upload", "heartbeat"):
        task = _task(as_json, name)
        assert task["state"] == "waiting" and task["healthy"] and task["last_error"] is None, task
        assert task["waiting_for"].startswith("waiting for cloud (channel "), task
    assert as_json["running"] is True and as_json["healthy"] is True, as_json
    lines = {line.split(":", 1)[0].strip(): line.split(":", 1)[1].strip() for line in text.splitlines() if ":" in line}
    for name in ("readings-upload", "heartbeat"):
        line = lines[f"task {name}"]
        assert line.startswith("waiting for cloud (channel "), text  # what it waits for, on its line
        assert "last error" not in line.split(")", 1)[1], text  # waiting is not a task error
        assert line.endswith("restarts 0"), text
    assert lines["healthy"] == "True" and lines["running"] == "True", text
