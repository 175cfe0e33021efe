"""`printgate agent status` (text) lists the printers as a table, not as a Python list."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from agent.channel.enroll import EnrolledIdentity

PRINTGATE = str(Path(sys.executable).with_name("printgate"))


def test_status_prints_printers_as_a_table(tmp_path: Path) -> None:
    EnrolledIdentity(agent_id="ag-1", site_id="site-1", data_dir=tmp_path, command_verify_key=b"\x01" * 32,
                     relay_address="127.0.0.1:2222", relay_host_key_fingerprint="SHA256:x", mqtt_url="",
                     cert_not_after_ms=4_102_444_800_000).save()
    (tmp_path / "status.json").write_text(json.dumps({
        "pid": 0, "written_at": "2026-12-05T18:00:00+00:00", "tasks": [],
        "printers": [{"ip": "127.0.0.11", "model": "Brother HL-5370DW series", "serial": "B9J154306"},
                     {"ip": "127.0.0.12", "model": "HP LaserJet M880", "serial": None}]}))
    result = subprocess.run([PRINTGATE, "agent", "status", "--data-dir", str(tmp_path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "{'ip'" not in result.stdout and "[{" not in result.stdout
    at = next(i for i, line in enumerate(lines) if line.strip().startswith("printers:"))
    assert lines[at].strip() == "printers: 2"
    assert lines[at + 1].split() == ["address", "model", "serial"]
    assert lines[at + 2].split() == ["127.0.0.11", "Brother", "HL-5370DW", "series", "B9J154306"]
    assert lines[at + 3].split() == ["127.0.0.12", "HP", "LaserJet", "M880", "-"]
