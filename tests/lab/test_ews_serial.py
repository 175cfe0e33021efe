"""The lab printers' web pages show the serial their SNMP recording reports, never an invented one
(the M880's recording has none: Fleet says "unknown" and so must its web page)."""

from __future__ import annotations

import httpx

from agent.snmp.parsing import identity_from
from lab import snmprec
from lab.catalog import PRINTERS
from lab.ews.server import EwsLab
from lab.snmp import recording_path


async def test_each_lab_web_page_shows_the_serial_snmp_reports() -> None:
    async with EwsLab(PRINTERS) as lab, httpx.AsyncClient(verify=False, timeout=10) as client:  # lab: self-signed
        for d in PRINTERS:
            serial = identity_from(snmprec.load(recording_path(d.name)), ip=d.ip)[0].serial
            server = lab[d.name]
            page = (await client.get(f"{'https' if d.https else 'http'}://{d.ip}:{server.port}/")).text
            shown = page[page.index("<p id=serial>"):].split("</p>")[0]
            if serial:
                assert serial in shown, d.name
            else:
                assert "not reported" in shown and "LAB" not in shown, d.name
