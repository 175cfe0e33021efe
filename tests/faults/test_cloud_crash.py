"""The cloud killed (SIGKILL) with a session open: the restarted gateway audits the end of the
session the dead process left open and tells the agent to drop its tunnel (no retry loop against
a dead session). Cloud and agent run as their own processes."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from agent.channel.enroll import enroll
from audit.query import row_to_record
from lab.catalog import PRINTERS
from lab.ports import free_tcp_port
from printgate.store import audit as audit_store
from printgate.store.db import Database
from tests.faults.agent_proc import start_agent, stop, wait_status, write_config

ROOT = Path(__file__).resolve().parents[2]


async def _cloud(base: Path, ports: dict[str, int], *extra: str) -> tuple[asyncio.subprocess.Process, dict]:  # type: ignore[type-arg]
    facts_path = base / "cloud.json"
    facts_path.unlink(missing_ok=True)
    log = open(base.parent / "cloud.log", "ab")  # the child keeps its own copy of the descriptor
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.faults.cloud_proc", str(base), json.dumps(ports), *extra,
            cwd=ROOT, stdout=log, stderr=log)
    finally:
        log.close()
    return proc, await _facts(base, proc, "token")


async def _facts(base: Path, proc: asyncio.subprocess.Process, want: str) -> dict:  # type: ignore[type-arg]
    async with asyncio.timeout(150):
        while True:
            path = base / "cloud.json"
            if path.exists():
                facts = json.loads(path.read_text())
                if want in facts:
                    return facts  # type: ignore[no-any-return]
            assert proc.returncode is None, (base.parent / "cloud.log").read_text()[-3000:]
            await asyncio.sleep(0.3)


async def test_cloud_killed_with_a_session_open_audits_its_end_and_the_agent_drops_the_tunnel(tmp_path: Path) -> None:
    base = Path(tempfile.mkdtemp(prefix="pgcrash-")) / "cloud"  # short: the gateway's Unix sockets live below
    base.mkdir()
    ports = {k: free_tcp_port() for k in ("portal", "relay_port", "proxy_port", "grpc_port", "enrol_port")}
    printer = PRINTERS[0]
    first, facts = await _cloud(base, ports, "--open-session", printer.ip)
    agent_dir = base.parent / "agent"
    await enroll(facts["enrol"], facts["token"], agent_dir, ca_cert_pem=Path(facts["ca"]).read_bytes())
    config = write_config(tmp_path / "agent.toml", {
        "cloud_grpc": facts["grpc"], "data_dir": str(agent_dir), "targets": [printer.ip],
        "snmp_port": facts["snmp_port"], "ews_candidates": [f"{facts['ews_port']}/https", f"{facts['ews_port']}/http"],
        "snmp_timeout": 1.0, "snmp_retries": 1, "stop_deadline_seconds": 5.0,
    })
    agent = await start_agent(config, base.parent / "agent.log")
    second: asyncio.subprocess.Process | None = None
    try:
        facts = await _facts(base, first, "session")
        session = facts["session"]
        await wait_status(config, lambda s: s.get("tunnels") == [session], timeout=60, what="tunnel open")

        first.kill()  # SIGKILL: the gateway ends nothing itself
        await first.wait()
        await asyncio.sleep(3)  # the agent notices and keeps its reconnect going meanwhile
        second, _ = await _cloud(base, ports)
        restarted = time.monotonic()
        await wait_status(config, lambda s: s.get("tunnels") == [], timeout=60,
                          what="the agent dropped the dead session's tunnel")
        dropped_in = time.monotonic() - restarted
    finally:
        await stop(agent)
        if second is not None:
            second.send_signal(signal.SIGTERM)
            await asyncio.wait_for(second.wait(), 60)
    assert dropped_in < 30

    db = Database(facts["database_url"])
    try:
        records = [row_to_record(r) async for batch in audit_store.iter_records(db) for r in batch]
    finally:
        await db.aclose()
        shutil.rmtree(base.parent, ignore_errors=True)
    ends = [r for r in records if r.session_id == session and r.type in ("dwa.session.closed", "dwa.session.failed")]
    assert len(ends) == 1, [(r.type, r.details) for r in records if r.session_id == session]
    assert str(ends[0].details["reason"]).startswith("gateway restarted")
    # still the tenant's record: its auditors see it (dealer, customer, site, device, user)
    assert ends[0].dealer_id and ends[0].customer_id and ends[0].device_id
    assert ends[0].details.get("site_id") and ends[0].details.get("user_id")
