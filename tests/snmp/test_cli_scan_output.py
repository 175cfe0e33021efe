"""`printgate agent scan`'s human table: device text stays text, credentials are not measured, failures are said.

The device strings come from a real recording changed in the test: a model
with console markup in it, a MAC that contains an emoji code (``:cd:``), a
serial with a control character. The table must show them as sent.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from lab.ports import free_udp_port
from lab.snmp import SnmpLab, recording_path
from tests.snmp.conftest import Snmpd

PRINTGATE = Path(sys.executable).parent / "printgate"
IP = "127.0.23.11"
MODEL = "LaserJet [/b] [rev a] :smile: [bold]x"
MAC_HEX, MAC = "4a236acd5ef1", "4a:23:6a:cd:5e:f1"
SERIAL = "VN\x1b[2J:cd:42"  # ESC + "clear screen" if sent raw


def edited_recording(into: Path) -> Path:
    lines = []
    for line in recording_path("jetdirect_m130nw").read_text().splitlines():
        oid = line.split("|", 1)[0]
        if oid == "1.3.6.1.2.1.25.3.2.1.3.1":
            line = f"{oid}|4|{MODEL}"
        elif oid == "1.3.6.1.2.1.2.2.1.6.2":
            line = f"{oid}|4x|{MAC_HEX}"
        elif oid == "1.3.6.1.2.1.43.5.1.1.17.1":
            line = f"{oid}|4x|{SERIAL.encode().hex()}"
        lines.append(line)
    out = into / "markup.snmprec"
    out.write_text("\n".join(lines) + "\n")
    return out


@pytest.fixture(scope="module")
async def lab(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[SnmpLab]:
    async with SnmpLab({IP: str(edited_recording(tmp_path_factory.mktemp("markup")))}) as running:
        yield running


async def scan(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        str(PRINTGATE), "agent", "scan", *args, "--timeout", "0.5", "--retries", "0",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={"COLUMNS": "400", "PATH": "/usr/bin:/bin"},
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_device_text_is_shown_as_sent_never_as_markup_or_emoji(lab: SnmpLab) -> None:
    rc, out, err = await scan(IP, "--port", str(lab.port))
    assert rc == 0, err
    assert "MarkupError" not in err
    assert MODEL in out  # "[/b]" did not crash the table, "[rev a]" and ":smile:" are still there
    assert MAC in out and "💿" not in out and "😄" not in out
    assert "\x1b" not in out  # the control character never reaches the terminal
    assert "VN" in out and ":cd:42" in out


async def test_credentials_are_labelled_by_position_not_by_length(lab: SnmpLab) -> None:
    rc, out, _ = await scan(IP, "--port", str(lab.port), "-c", "wrong1", "-c", "public")
    assert rc == 0
    assert "v2c:community 2" in out
    assert "community#" not in out


async def test_addresses_that_refuse_are_not_called_silent(lab: SnmpLab) -> None:
    closed = free_udp_port()  # nothing listens: the kernel answers port unreachable
    rc, out, _ = await scan("127.0.23.50", "--port", str(closed))
    assert rc == 0
    assert "refusing" in out and "silent" not in out
    assert "no SNMP agent at 127.0.23.50" in out


async def test_a_wrong_v3_privacy_key_is_hinted_in_the_table(snmpd_v3: Snmpd) -> None:
    rc, out, _ = await scan(
        "127.0.0.1", "--port", str(snmpd_v3.port), "--v3-user", snmpd_v3.user, "--auth-protocol", "SHA256",
        "--auth-key", snmpd_v3.auth_key, "--priv-protocol", "AES128", "--priv-key", "not-the-priv-key",
    )
    assert rc == 0
    assert "wrong v3 privacy key" in out
    assert "silent" in out
