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


async def test_scan_on_a_terminal_shows_a_live_progress_bar_with_counts(snmp_lab: SnmpLab) -> None:
    # on a real terminal (a pty) rich redraws the bar while the sweep runs:
    # several frames, counts growing, the final frame with every address done
    import os
    import pty
    import re

    leader, follower = pty.openpty()
    try:
        proc = await asyncio.create_subprocess_exec(
            str(PRINTGATE), "agent", "scan", "127.0.20.0/26", "--port", str(snmp_lab.port),
            "--timeout", "1.0", "--retries", "0", "--rate", "0",
            stdin=follower, stdout=follower, stderr=follower,
            env={"COLUMNS": "160", "LINES": "50", "TERM": "xterm-256color", "PATH": "/usr/bin:/bin"},
        )
        os.close(follower)
        chunks: list[bytes] = []
        loop = asyncio.get_running_loop()
        while True:  # bounded by the process: EOF/EIO once it exits and the pty closes
            try:
                data = await asyncio.wait_for(loop.run_in_executor(None, os.read, leader, 65536), 60)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    finally:
        os.close(leader)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", b"".join(chunks).decode(errors="replace"))
    frames = re.findall(r"scan .*? (\d+)/62 +found (\d+) +excluded (\d+) +unreachable (\d+)", text)
    assert len(frames) >= 3, text[-2000:]
    done = [int(f[0]) for f in frames]
    assert done[0] < 62 and done[-1] == 62 and done == sorted(done), done
    others = sum(not d.printer for d in LAB_DEVICES)  # the lab's variants (.41-.43) are printers
    live = len(snmp_lab.devices)
    assert frames[-1][1:] == (str(live - others), str(others), str(62 - live))
    assert "VNCRC48198" in text  # and the table follows
