"""`printgate lab run`: the simulated printer LAN alone, with the settings an agent needs to find it.

The command runs as a real process; the agent's own scan command and web-page probe use
what it printed and wrote (the lab does not listen on the standard ports 161/443/80).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import tomllib
from pathlib import Path

from agent.ews_probe import find_ews
from agent.service import ews_candidates
from lab.catalog import LAB_DEVICES, PRINTERS
from lab.snmp import SnmpLab
from printgate.settings import AgentSettings

PRINTGATE = Path(sys.executable).parent / "printgate"
ENV = {"COLUMNS": "200", "PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/root")}  # snmpsim needs HOME


async def _scan(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        str(PRINTGATE), "agent", "scan", *args, "--timeout", "0.5", "--retries", "0", "--json",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=ENV,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_lab_run_prints_its_ports_and_writes_agent_settings_that_find_every_printer(tmp_path: Path) -> None:
    snippet = tmp_path / "agent-lab.toml"
    proc = await asyncio.create_subprocess_exec(
        str(PRINTGATE), "lab", "run", "--write", str(snippet),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=ENV,
    )
    assert proc.stdout is not None
    printed: list[str] = []
    try:
        while not printed or "Press Ctrl-C" not in printed[-1]:
            line = await asyncio.wait_for(proc.stdout.readline(), 60)
            assert line, f"lab run ended early: {''.join(printed)}"
            printed.append(line.decode())
        settings = AgentSettings(**tomllib.loads(snippet.read_text())["agent"])
        text = "".join(printed)
        assert f"udp port {settings.snmp_port}" in text and settings.snmp_port != 161
        assert settings.targets == [d.ip for d in LAB_DEVICES]

        rc, out, _ = await _scan(*settings.targets, "--port", str(settings.snmp_port))
        assert rc == 0
        assert sum(r["status"] == "printer" for r in json.loads(out)) == len(PRINTERS)
        for d in PRINTERS:  # every printer's web page, where the agent looks with these settings
            ews = await find_ews(d.ip, ews_candidates(settings), timeout=2.0)
            assert ews is not None, d.name
            assert (ews.scheme == "https") == d.https and f"{ews.scheme}://{d.ip}:{ews.port}/" in text

        # an agent with the default SNMP port finds nothing here, and is told why
        rc, _, err = await _scan(settings.targets[0], settings.targets[1], "--port", "161")
        assert rc == 0 and "nothing answered SNMP on UDP port 161" in " ".join(err.split())
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        out_rest, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0 and "lab stopped" in out_rest.decode()


async def test_a_sweep_where_nothing_answers_warns_about_port_and_community() -> None:
    # the agent's own sweep with the default port against the lab addresses (the lab is not on 161)
    from structlog.testing import capture_logs

    from agent.discovery import DiscoveryLimits, discover
    from printgate.domain import SnmpCredential, numbered

    targets = [d.ip for d in LAB_DEVICES[:4]]
    async with SnmpLab(port=None) as lab:
        with capture_logs() as logged:
            found = await discover(targets, port=161, credentials=numbered([SnmpCredential.v2c("public")]),
                                   limits=DiscoveryLimits(timeout=0.5, retries=0))
            assert {str(r.status) for r in found} == {"unreachable"}
            right = await discover(targets, port=lab.port, credentials=numbered([SnmpCredential.v2c("public")]),
                                   limits=DiscoveryLimits(timeout=0.5, retries=0))
    warned = [e for e in logged if e["event"] == "discovery.nothing_answered"]
    assert len(warned) == 1 and warned[0]["log_level"] == "warning"  # the sweep that found something: no warning
    assert warned[0]["port"] == 161 and "snmp_port" in warned[0]["hint"]
    assert any(str(r.status) == "printer" for r in right)
