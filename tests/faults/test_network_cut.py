"""A silent network cut between agent and cloud (the cloud runs in a network namespace the test made,
nftables drops the channel there): the agent keeps polling, says what waits in `agent status`, and
after the cut every reading arrives once, nothing dropped. Root only."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from agent.channel.enroll import enroll
from lab.catalog import PRINTERS
from lab.ports import free_tcp_port
from lab.snmp import SnmpLab
from printgate.store.db import Database
from printgate.store.models.readings import ReadingRow
from tests.faults.agent_proc import (
    dropped_count,
    queued_ids,
    start_agent,
    stop,
    wait_status,
    write_config,
)

ROOT = Path(__file__).resolve().parents[2]


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


@pytest.fixture
def cloud_netns() -> Iterator[tuple[str, str]]:
    """A namespace joined to this one by a veth pair; (namespace, its address)."""
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    tag = secrets.token_hex(3)
    ns, here, there = f"pgf-{tag}", f"pgf{tag}a", f"pgf{tag}b"
    net = f"10.{200 + secrets.randbelow(50)}.{secrets.randbelow(250)}"
    _ip("netns", "add", ns)
    try:
        _ip("link", "add", here, "type", "veth", "peer", "name", there)
        _ip("link", "set", there, "netns", ns)
        _ip("addr", "add", f"{net}.1/30", "dev", here)
        _ip("-n", ns, "addr", "add", f"{net}.2/30", "dev", there)
        _ip("link", "set", here, "up")
        _ip("-n", ns, "link", "set", there, "up")
        _ip("-n", ns, "link", "set", "lo", "up")
        yield ns, f"{net}.2"
    finally:
        subprocess.run(["ip", "link", "del", here], capture_output=True, timeout=30)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)


def _nft(ns: str, script: str) -> None:
    subprocess.run(["ip", "netns", "exec", ns, "nft", "-f", "-"], input=script, text=True, check=True,
                   capture_output=True, timeout=30)


async def _cloud_ids(url: str) -> set[str]:
    db = Database(url)
    try:
        async with db.session() as s:
            return set((await s.execute(select(ReadingRow.id))).scalars())
    finally:
        await db.aclose()


async def test_agent_rides_out_a_silent_network_cut(cloud_netns: tuple[str, str], tmp_path: Path) -> None:
    ns, address = cloud_netns
    base = Path(tempfile.mkdtemp(prefix="pgcut-")) / "cloud"  # short: the gateway's Unix sockets live below
    base.mkdir()
    ports = {k: free_tcp_port() for k in ("portal", "relay_port", "proxy_port", "grpc_port", "enrol_port")}
    log = open(base.parent / "cloud.log", "ab")  # the child keeps its own copy of the descriptor
    cloud = await asyncio.create_subprocess_exec(
        "ip", "netns", "exec", ns, sys.executable, "-m", "tests.faults.cloud_proc", str(base),
        json.dumps(ports | {"grpc_host": address}), cwd=ROOT, stdout=log, stderr=log)
    log.close()
    printers = PRINTERS[:2]
    agent: asyncio.subprocess.Process | None = None
    try:
        async with asyncio.timeout(150):
            while not (base / "cloud.json").exists():
                assert cloud.returncode is None, (base.parent / "cloud.log").read_text()[-3000:]
                await asyncio.sleep(0.3)
        facts = json.loads((base / "cloud.json").read_text())
        agent_dir = base.parent / "agent"
        await enroll(facts["enrol"], facts["token"], agent_dir, ca_cert_pem=Path(facts["ca"]).read_bytes())
        async with SnmpLab({p.ip: p.name for p in printers}, workdir=base.parent / "snmp") as lab:
            config = write_config(tmp_path / "agent.toml", {
                "cloud_grpc": facts["grpc"], "data_dir": str(agent_dir), "targets": [p.ip for p in printers],
                "snmp_port": lab.port, "counters_interval_seconds": 1.0, "supplies_interval_seconds": 1.0,
                "alerts_interval_seconds": 1.0, "upload_interval_seconds": 0.5, "scan_interval_seconds": 3600.0,
            })
            agent = await start_agent(config, base.parent / "agent.log")
            async with asyncio.timeout(90):
                while not await _cloud_ids(facts["database_url"]):
                    await asyncio.sleep(0.5)

            _nft(ns, "table inet pgcut {\n chain input {\n  type filter hook input priority 0; policy accept;\n"
                     f"  tcp dport {{ {ports['grpc_port']}, {ports['enrol_port']} }} drop\n }}\n}}\n")
            cut_at = time.monotonic()
            during = await wait_status(config, lambda s: (s.get("queue_length") or 0) >= 12, timeout=60,
                                       what="readings queued during the cut")
            assert during["oldest_queued"] is not None and during["running"]
            # healthy throughout: polling runs, the upload waits for the cloud ("waiting" is healthy)
            assert all(t["healthy"] and t["state"] in ("running", "waiting") for t in during["tasks"]), during["tasks"]
            await asyncio.sleep(max(0.0, 20 - (time.monotonic() - cut_at)))  # longer than the RPC timeouts
            waiting = queued_ids(agent_dir)
            _nft(ns, "delete table inet pgcut\n")
            restored = time.monotonic()
            async with asyncio.timeout(120):
                while not waiting <= await _cloud_ids(facts["database_url"]):
                    await asyncio.sleep(0.5)
            recovered_in = time.monotonic() - restored
            await wait_status(config, lambda s: s.get("queue_length", 1) <= 6, timeout=60, what="queue drained")
            await stop(agent)
            agent = None
        assert dropped_count(agent_dir) == 0
        db = Database(facts["database_url"])
        try:
            async with db.session() as s:
                total, distinct = (await s.execute(select(func.count(), func.count(ReadingRow.id.distinct())))).one()
        finally:
            await db.aclose()
        assert total == distinct
        print(f"cut {restored - cut_at:.1f}s, {len(waiting)} readings waited, delivered {recovered_in:.1f}s "
              "after the network came back")
        assert recovered_in < 60
    finally:
        if agent is not None:
            await stop(agent)
        cloud.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(cloud.wait(), 60)
        except TimeoutError:
            cloud.kill()
        shutil.rmtree(base.parent, ignore_errors=True)
