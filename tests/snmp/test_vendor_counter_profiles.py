"""Ricoh, Kyocera and Toshiba page counters through the running agent's polling path.

Recordings of other vendors' printers (or the lab's Ricoh) are copied and given the vendor's
sysObjectID and private-MIB counter objects (the profile's OIDs in
``agent/snmp/vendor_profiles.toml``), served by snmpsim; discovery -> ``Monitoring`` ->
poller -> upload, as under ``printgate agent run``, must deliver them as ``vendor.*`` counters
with the served values (issue 13 follow-up, item 4).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agent.snmp import oids
from agent.snmp.profiles import profile_for
from lab.snmp import SnmpLab, recording_path
from printgate.domain import ReadingKind
from tests.snmp.conftest import poll_like_the_agent

COUNTER32 = "65"

# ip -> (recording to start from, sysObjectID it answers with, {counter name: (oid, value)})
CASES: dict[str, tuple[str, str | None, dict[str, tuple[str, int]]]] = {
    "127.0.24.11": ("ricoh_mpc3002", None, {  # the lab's Ricoh MP C3002 keeps its own sysObjectID
        "pages.total": ("1.3.6.1.4.1.367.3.2.1.2.19.1.0", 271871),
        "prints.total": ("1.3.6.1.4.1.367.3.2.1.2.19.2.0", 190211),
        "fax.total": ("1.3.6.1.4.1.367.3.2.1.2.19.3.0", 1402),
        "copies.total": ("1.3.6.1.4.1.367.3.2.1.2.19.4.0", 80258),
    }),
    "127.0.24.12": ("brother_hl5370dw", "1.3.6.1.4.1.1347.41", {  # an ECOSYS answers 1347.41
        "pages.total": ("1.3.6.1.4.1.1347.43.10.1.1.12.1.1", 56012),
        "prints.mono": ("1.3.6.1.4.1.1347.42.3.1.2.1.1.1.1", 40100),
        "prints.colour": ("1.3.6.1.4.1.1347.42.3.1.2.1.1.1.3", 9033),
        "copies.mono": ("1.3.6.1.4.1.1347.42.3.1.2.1.1.2.1", 5120),
        "copies.colour": ("1.3.6.1.4.1.1347.42.3.1.2.1.1.2.3", 1759),
    }),
    "127.0.24.13": ("konica_c250i", "1.3.6.1.4.1.1129.2.3.45.1", {  # an e-STUDIO
        "prints.mono": ("1.3.6.1.4.1.1129.2.3.50.1.3.21.6.1.2.1.1", 120034),
        "prints.colour": ("1.3.6.1.4.1.1129.2.3.50.1.3.21.6.1.3.1.1", 33310),
        "copies.mono": ("1.3.6.1.4.1.1129.2.3.50.1.3.21.6.1.2.1.2", 20500),
        "copies.colour": ("1.3.6.1.4.1.1129.2.3.50.1.3.21.6.1.3.1.2", 7012),
    }),
}
VENDORS = {"127.0.24.11": "Ricoh", "127.0.24.12": "Kyocera", "127.0.24.13": "Toshiba"}


def mutated(src: str, sys_object_id: str | None, counters: dict[str, tuple[str, int]], dst: Path) -> Path:
    lines = [line for line in recording_path(src).read_text(errors="replace").splitlines() if line]
    if sys_object_id is not None:
        lines = [f"{oids.SYS_OBJECT_ID}|6|{sys_object_id}" if line.startswith(oids.SYS_OBJECT_ID + "|") else line
                 for line in lines]
    lines += [f"{oid}|{COUNTER32}|{value}" for oid, value in counters.values()]
    lines.sort(key=lambda line: oids.oid_tuple(line.split("|", 1)[0]))
    dst.write_text("\n".join(lines) + "\n")
    return dst


@pytest.fixture(scope="module")
async def lab(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[SnmpLab]:
    work = tmp_path_factory.mktemp("vendor-counters")
    devices = {ip: str(mutated(src, soid, counters, work / f"{ip}.snmprec"))
               for ip, (src, soid, counters) in CASES.items()}
    async with SnmpLab(devices) as running:
        yield running


async def test_ricoh_kyocera_and_toshiba_page_counters_arrive_from_the_agents_polling(
    lab: SnmpLab, tmp_path: Path
) -> None:
    printers, uploaded = await poll_like_the_agent(list(CASES), lab.port, tmp_path / "queue.sqlite")

    for result in printers:
        assert result.identity is not None
        assert result.identity.vendor == VENDORS[result.ip]
        profile = profile_for(result.identity.sys_object_id)
        assert profile.vendor == VENDORS[result.ip]
        [reading] = [r for r in uploaded if r.ip == result.ip and ReadingKind.COUNTERS in r.kinds]
        got = {c.name: c.value for c in reading.counters if c.name.startswith("vendor.")}
        want = {f"vendor.{name}": value for name, (_oid, value) in CASES[result.ip][2].items()}
        assert got == want, result.ip
        assert not [e for e in reading.errors if "vendor" in str(e)], reading.errors
