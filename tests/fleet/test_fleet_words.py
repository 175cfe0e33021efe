"""Fleet pages in words (issue 13 follow-up): page counts a printer does not report are said so,
supply kinds are words, the 'no colour' note is said once; through the real portal app, both backends."""

from __future__ import annotations

from contextlib import aclosing

from fleet.ingest import ingest_payload
from portal.fleet.supply_words import supply_kind_words
from printgate.domain import Role
from tests.fleet.conftest import T0, FleetPortal, days, payload_of, reading_of, signed_in


async def test_pages_not_reported_by_the_printer_are_said_so(fleet_portal: FleetPortal) -> None:
    dell = reading_of("dell-laser_s5830dn", ip="127.0.20.12", at=T0, serial_known=False)  # the lab Dell
    assert dell.counters == ()  # its recording has neither prtMarkerLifeCount nor a vendor counter
    assert await ingest_payload(fleet_portal.db, "a-c1", "b-dell", payload_of([dell])) is True
    client, _ = await signed_in(fleet_portal, Role.TECHNICIAN)
    async with aclosing(client):
        detail = (await client.get("/fleet/dev-canon")).text
        listing = (await client.get("/fleet")).text
    assert 'id="pages">not reported: this printer\'s SNMP agent reports no page counter' in detail.replace("&#39;", "'")

    def row(device_id: str) -> str:
        rest = listing[listing.index(f'data-device-id="{device_id}"'):]
        return rest[:rest.index("</tr>")]

    assert ">not reported</span>" in row("dev-canon")
    assert "no reading yet" in row("dev-brother")  # nothing received: not the printer's fault


async def test_supply_kinds_are_words_and_the_colour_note_is_said_once(fleet_portal: FleetPortal) -> None:
    m130 = reading_of("jetdirect_m130nw", ip="127.0.20.15", at=T0)
    brother = reading_of("brother_hl5370dw", ip="127.0.20.11", at=T0)
    assert {s.type for s in m130.supplies} == {"toner", "opc"} and any(s.colour is None for s in m130.supplies)
    assert await ingest_payload(fleet_portal.db, "a-c1", "b-m130", payload_of([m130])) is True
    assert await ingest_payload(fleet_portal.db, "a-c2", "b-bro", payload_of([brother])) is True
    client, _ = await signed_in(fleet_portal, Role.TECHNICIAN)
    async with aclosing(client):
        page = (await client.get("/fleet/dev-m130")).text
        bro = (await client.get("/fleet/dev-brother")).text
        supplies = (await client.get("/api/fleet/devices/dev-m130/supplies",
                                     headers={"accept": "application/json"})).json()
    table = page[page.index('id="supplies"'):page.index("</table>", page.index('id="supplies"'))]
    assert "(opc)" not in table and "(drum (OPC))" in table
    assert "(toner)" in table  # 'Black Cartridge HP CF217A': the kind adds something
    assert "Black Toner Cartridge</td>" in bro  # the kind is in the name already: not repeated
    assert page.count("the printer names no colour") == 1 and 'id="colour-note"' in page
    assert {s["type"]: s["type_text"] for s in supplies} == {"toner": "toner", "opc": "drum (OPC)"}


def test_supply_kind_words() -> None:
    assert supply_kind_words("tonerCartridge") == "toner cartridge"
    assert supply_kind_words("wasteToner") == "waste toner"
    assert supply_kind_words("opc") == "drum (OPC)"
    assert supply_kind_words("unknown") == ""


async def _status_of_canon(fp: FleetPortal, recording: str) -> dict[str, object]:
    r = reading_of(recording, ip="127.0.20.12", at=T0, serial_known=False)
    assert await ingest_payload(fp.db, "a-c1", f"b-{recording}", payload_of([r])) is True
    fp.clock.offset = T0 + days(0.01) - fp.clock()
    client, _ = await signed_in(fp, Role.TECHNICIAN)
    async with aclosing(client):
        detail = (await client.get("/api/fleet/devices/dev-canon", headers={"accept": "application/json"})).json()
    return dict(detail)


async def test_status_reflects_the_worst_open_alert_and_names_it(fleet_portal: FleetPortal) -> None:
    detail = await _status_of_canon(fleet_portal, "epson")  # the lab EPSON: every ink at 1 %
    alerts = detail["alerts"]
    assert isinstance(alerts, list) and any(a["severity"] == "critical" for a in alerts)
    assert detail["status_level"] == "error"
    text = str(detail["status_text"])
    assert "critical alert:" in text and f"+{len(alerts) - 1} more open alerts" in text


async def test_a_warning_without_any_reason_says_the_printer_gives_none(fleet_portal: FleetPortal) -> None:
    detail = await _status_of_canon(fleet_portal, "ricoh_mpc3002")  # hrDeviceStatus warning, nothing else
    assert detail["alerts"] == [] and detail["status_level"] == "warning"
    assert "the printer gives no reason over SNMP" in str(detail["status_text"])


async def test_the_fleet_list_does_not_repeat_a_model_the_name_already_says(fleet_portal: FleetPortal) -> None:
    from printgate.store.models.core import DeviceRow

    async with fleet_portal.db.transaction() as s:  # a discovered printer is named after its model
        row = await s.get(DeviceRow, "dev-canon")
        assert row is not None and row.model == "recorded"
        row.name = "Recorded"
    client, _ = await signed_in(fleet_portal, Role.TECHNICIAN)
    async with aclosing(client):
        listing = (await client.get("/fleet")).text

    def row_of(device_id: str) -> str:
        rest = listing[listing.index(f'data-device-id="{device_id}"'):]
        return rest[:rest.index("</tr>")]

    assert "recorded ·" not in row_of("dev-canon") and "127.0.20.12" in row_of("dev-canon")
    assert "recorded · 127.0.20.15" in row_of("dev-m130")  # 'Front desk M130': the model adds something
