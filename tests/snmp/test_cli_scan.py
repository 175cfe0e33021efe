"""`printgate agent scan` against the lab: JSON for machines, a table for people."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from lab.catalog import LAB_DEVICES
from lab.snmp import SnmpLab

PRINTGATE = Path(sys.executable).parent / "printgate"


async def _scan(lab: SnmpLab, *extra: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        str(PRINTGATE), "agent", "scan", "127.0.20.0/27", "127.0.20.31", "127.0.20.34",
        "--port", str(lab.port), "--timeout", "0.5", "--retries", "0", *extra,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_scan_json_lists_printers_and_excluded_devices(snmp_lab: SnmpLab) -> None:
    rc, out, _ = await _scan(snmp_lab, "--json")
    assert rc == 0
    rows = {r["ip"]: r for r in json.loads(out)}
    for d in LAB_DEVICES:
        if d.ip in rows:
            assert rows[d.ip]["status"] == ("printer" if d.printer else "excluded"), d.name
    assert rows["127.0.20.15"]["identity"]["serial"] == "VNCRC48198"
    assert rows["127.0.20.9"]["status"] == "unreachable"
    assert sum(r["status"] == "printer" for r in rows.values()) == 11


async def test_scan_prints_a_table_with_counts(snmp_lab: SnmpLab) -> None:
    rc, out, err = await _scan(snmp_lab)
    assert rc == 0
    assert "found 11" in out and "excluded 2" in out
    assert "VNCRC48198" in out and "not a printer" in out
    assert "scan" in err  # the progress bar goes to stderr


async def test_scan_refuses_a_bad_target_clearly(snmp_lab: SnmpLab) -> None:
    rc, _, err = await _scan(snmp_lab, "--exclude", "printer.local")
    assert rc == 2 and "not an IPv4 address or CIDR" in err
