"""Status and alerts people can act on, from the recordings through ingestion to the API.

- the Epson's inks at 1 % raise critical alerts (default thresholds), cleared by a refill;
- a dealer's own thresholds apply to its devices only;
- the HP's detected error states (door open, jammed) are alerts, and the status is words;
- a waste container filling up is never "low" nor the lowest supply;
- supply names HP sends wrapped as hex are decoded, colours come from the colorant table
  or the name, and a missing forecast says what history it still needs.
"""

from __future__ import annotations

from contextlib import aclosing
from dataclasses import replace
from datetime import UTC, datetime

from agent.snmp.parsing import supplies_from
from fleet.ingest import ingest_payload
from lab import snmprec
from lab.snmp import recording_path
from portal.fleet.forecast import no_forecast_reason
from printgate.domain import Role, SupplyLevel, SupplyState
from printgate.fleet_alerts import SupplyThresholds, supply_alerts
from printgate.store.db import Database
from printgate.store.fleet import (
    TenantScope,
    cleared_alerts,
    fleet_device,
    lowest_supply,
    open_alerts,
)
from printgate.store.models.readings import SupplyThresholdRow
from tests.fleet.conftest import T0, FleetPortal, days, payload_of, reading_of, signed_in

D1 = TenantScope(dealer_id="d1")
JSON = {"accept": "application/json"}


async def test_inks_at_one_percent_raise_critical_alerts_that_a_refill_clears(fleet_db: Database) -> None:
    low = reading_of("epson", ip="127.0.20.12", at=T0, serial_known=False)  # maps to dev-canon by address
    assert {s.percent for s in low.supplies} == {1.0}
    assert await ingest_payload(fleet_db, "a-c1", "b-1", payload_of([low]))
    async with fleet_db.session() as s:
        opened = await open_alerts(s, "dev-canon")
    supply = [a for a in opened if a.alert.group == "supplyThreshold"]
    assert len(supply) == 4 and {a.alert.severity for a in supply} == {"critical"}
    assert any(a.alert.description.startswith("Black Ink Supply Unit") and "1 %" in a.alert.description
               for a in supply)

    refilled = replace(reading_of("epson", ip="127.0.20.12", at=T0 + days(1), serial_known=False),
                       supplies=tuple(replace(s, level=90) for s in low.supplies))
    assert await ingest_payload(fleet_db, "a-c1", "b-2", payload_of([refilled]))
    async with fleet_db.session() as s:
        still = [a for a in await open_alerts(s, "dev-canon") if a.alert.group == "supplyThreshold"]
        cleared = await cleared_alerts(s, "dev-canon", since=T0)
    assert still == []
    assert len(cleared) == 4 and all(a.cleared_at == T0 + days(1) and a.raised_at == T0 for a in cleared)


async def test_a_dealers_own_thresholds_apply_to_its_devices_only(fleet_db: Database) -> None:
    async with fleet_db.transaction() as s:
        s.add(SupplyThresholdRow(tenant_id="d1", warning_percent=30, critical_percent=10,
                                 updated_at=T0, updated_by="admin@d1"))
    hp = reading_of("lab-jetdirect_m130nw-alerts", ip="127.0.20.15", at=T0)  # black at 28 %
    assert await ingest_payload(fleet_db, "a-c1", "b-1", payload_of([hp]))  # d1's device
    assert await ingest_payload(fleet_db, "a-c3", "b-2", payload_of([hp]))  # d2's device, same printer data
    async with fleet_db.session() as s:
        mine = [a.alert for a in await open_alerts(s, "dev-m130") if a.alert.group == "supplyThreshold"]
        theirs = [a.alert for a in await open_alerts(s, "dev-foreign") if a.alert.group == "supplyThreshold"]
    assert [(a.severity, a.index) for a in mine] == [("warning", 1)]
    assert "warning at 30 %" in mine[0].description
    assert theirs == []  # d2 has the defaults: 28 % is fine


async def test_detected_error_states_are_alerts_and_the_status_is_in_words(fleet_portal: FleetPortal) -> None:
    hp = reading_of("lab-jetdirect_m130nw-alerts", ip="127.0.20.15", at=T0)
    assert await ingest_payload(fleet_portal.db, "a-c1", "b-1", payload_of([hp]))
    client, _ = await signed_in(fleet_portal, Role.VIEWER)
    async with aclosing(client):
        listed = {d["id"]: d for d in (await client.get("/api/fleet/devices", headers=JSON)).json()}
        alerts = (await client.get("/api/fleet/devices/dev-m130/alerts", headers=JSON)).json()
    m130 = listed["dev-m130"]
    assert m130["status_level"] == "error"
    assert m130["status_text"] == "Down: a door is open, paper jam"  # hrDeviceStatus down(5) + the two bits
    states = {a["code"]: a for a in alerts["open"] if a["group"] == "detectedErrorState"}
    assert set(states) == {"doorOpen", "jammed"}
    assert states["jammed"]["severity_text"] == "Critical" and states["jammed"]["what"] == "Paper jam"
    assert all(a["raised_at"] and a["last_seen_at"] for a in alerts["open"])
    canon = listed["dev-canon"]  # no reading yet: says why
    assert canon["status_level"] == "unknown" and canon["status_text"] == "Unknown: no status reading received yet"
    brother = listed["dev-brother"]
    assert brother["status_text"].startswith("Unknown") and "agent is offline" in brother["status_text"]


def test_a_waste_container_is_never_the_lowest_supply_nor_low() -> None:
    canon = reading_of("canonprinter_tm", ip="127.0.20.12", at=T0)
    waste = next(s for s in canon.supplies if s.type == "wasteInk")
    almost_empty_box = replace(waste, level=335)  # 5 %: an almost empty waste box is good news
    supplies = [almost_empty_box if s.index == waste.index else s for s in canon.supplies]
    lowest = lowest_supply(supplies)
    assert lowest is not None and lowest.type != "wasteInk" and lowest.description == "CANON Yellow Ink Tank"  # 60 %
    assert supply_alerts(supplies, SupplyThresholds()) == {}


def test_hp_supply_names_sent_as_hex_are_decoded_and_colours_filled() -> None:
    supplies, _ = supplies_from(snmprec.load(recording_path("jetdirect_m880")))
    by_index = {s.index: s for s in supplies}
    assert by_index[3].description == "Magenta Cartridge 827A HP CF303A"
    assert by_index[10].description == "Fuser Kit HP 110V-C1N54A, 220V-C1N58A"
    assert all(not any(c in s.description for c in "\n\x00") for s in supplies)
    assert by_index[3].colour == "magenta"  # no colorant table in the recording: the name's colour word
    assert by_index[9].colour is None  # colorant index 0: a transfer kit has no colour


def test_no_forecast_says_how_much_history_it_still_needs() -> None:
    t = [datetime(2025, 3, 1, h, tzinfo=UTC) for h in (8, 9, 10, 20)]
    assert no_forecast_reason([]) == "no forecast: no level in percent reported yet"
    assert no_forecast_reason([(t[0], 50.0)]) == "no forecast yet: needs 2 more readings (1 of 3 since the last refill)"
    assert no_forecast_reason([(t[0], 50.0), (t[1], 49.0), (t[2], 48.0)]) == (
        "no forecast yet: needs readings over 6 hours (2.0 h so far since the last refill)")
    assert no_forecast_reason([(t[0], 50.0), (t[1], 50.0), (t[3], 50.0)]) == "no forecast: the level is not falling"


async def test_special_levels_and_missing_colours_are_explained_in_the_api(fleet_portal: FleetPortal) -> None:
    brother = reading_of("brother_hl5370dw", ip="127.0.20.11", at=T0)
    assert await ingest_payload(fleet_portal.db, "a-c2", "b-1", payload_of([brother]))
    client, _ = await signed_in(fleet_portal, Role.VIEWER)
    async with aclosing(client):
        supplies = (await client.get("/api/fleet/devices/dev-brother/supplies", headers=JSON)).json()
    some = next(s for s in supplies if s["state"] == "some_remaining")
    assert some["level_note"] == "the printer reports only that some is left, not how much"
    assert some["forecast"].startswith("no forecast: the printer reports only that some is left")
    assert all(s["colour"] or s["colour_note"] for s in supplies)
    assert all(s["forecast"] for s in supplies)  # never an empty column without a word


def test_lowest_supply_falls_back_to_a_special_state_but_never_to_waste() -> None:
    waste = SupplyLevel(1, "Waste Toner Box", "wasteToner", None, "percent", 100, 2)
    toner = SupplyLevel(2, "Toner", "toner", "black", "percent", None, None, SupplyState.SOME_REMAINING)
    assert lowest_supply([waste, toner]) == toner
    assert lowest_supply([waste]) is None


async def test_fleet_device_counts_derived_alerts(fleet_db: Database) -> None:
    hp = reading_of("lab-jetdirect_m130nw-alerts", ip="127.0.20.15", at=T0)
    assert await ingest_payload(fleet_db, "a-c1", "b-1", payload_of([hp]))
    async with fleet_db.session() as s:
        f = await fleet_device(s, D1, "dev-m130")
        groups = sorted(a.alert.group for a in await open_alerts(s, "dev-m130"))
    assert f is not None and f.open_alerts == len(groups) == 5
    assert groups.count("detectedErrorState") == 2


def test_the_page_count_falls_back_to_the_vendor_total_without_marker_counters() -> None:
    from fleet.state import page_count_of
    from printgate.domain import CounterValue
    konica = reading_of("konica_c250i", ip="127.0.20.17", at=T0)
    assert page_count_of(konica) == sum(c.value for c in konica.counters if c.name.startswith("marker."))
    vendor_only = replace(konica, counters=(CounterValue("vendor.pages.total", 4242), CounterValue("vendor.pages.mono", 42)))
    assert page_count_of(vendor_only) == 4242
    assert page_count_of(replace(konica, counters=())) is None


async def test_an_open_supply_alert_follows_the_level(fleet_db: Database) -> None:
    low = reading_of("epson", ip="127.0.20.12", at=T0, serial_known=False)
    lower = replace(reading_of("epson", ip="127.0.20.12", at=T0 + days(1), serial_known=False),
                    supplies=tuple(replace(s, level=0) for s in low.supplies))
    assert await ingest_payload(fleet_db, "a-c1", "b-1", payload_of([low, lower]))
    async with fleet_db.session() as s:
        supply = [a for a in await open_alerts(s, "dev-canon") if a.alert.group == "supplyThreshold"]
    assert len(supply) == 4  # still one alert per supply, raised once
    assert all(a.raised_at == T0 and a.last_seen_at == T0 + days(1) for a in supply)
    assert all(" at 0 % " in a.alert.description for a in supply), [a.alert.description for a in supply]
