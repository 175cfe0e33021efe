"""The fleet JSON API and pages through the real portal app (login, roles,
tenant isolation), on SQLite and PostgreSQL."""

from __future__ import annotations

from contextlib import aclosing

import pytest

from fleet.ingest import ingest_payload
from printgate.domain import Role
from tests.fleet.conftest import T0, FleetPortal, days, payload_of, reading_of, signed_in

JSON = {"accept": "application/json"}


async def _history(fp: FleetPortal) -> None:
    """M130: five days of falling black toner, alerts on the last day."""
    base = reading_of("jetdirect_m130nw", ip="127.0.20.15", at=T0)
    readings = []
    for i in range(5):
        r = reading_of("jetdirect_m130nw" if i < 4 else "lab-jetdirect_m130nw-alerts",
                       ip="127.0.20.15", at=T0 + days(i))
        sup = tuple(s.__class__(s.index, s.description, s.type, s.colour, s.unit, s.max_capacity,
                                (s.level or 0) - 4 * i if s.index == 1 else s.level, s.state)
                    for s in r.supplies)
        readings.append(r.__class__(**{**{f: getattr(r, f) for f in r.__slots__}, "supplies": sup}))
    assert base.supplies[0].index == 1 and base.supplies[0].level == 28
    assert await ingest_payload(fp.db, "a-c1", "b-hist", payload_of(readings)) is True
    brother = reading_of("brother_hl5370dw", ip="127.0.20.11", at=T0)
    assert await ingest_payload(fp.db, "a-c2", "b-bro", payload_of([brother])) is True
    other = reading_of("lab-jetdirect_m130nw-alerts", ip="127.0.20.15", at=T0)
    assert await ingest_payload(fp.db, "a-c3", "b-other", payload_of([other])) is True


async def test_dealer_user_lists_own_devices_with_status(fleet_portal: FleetPortal) -> None:
    await _history(fleet_portal)
    fleet_portal.clock.offset = T0 + days(5) - fleet_portal.clock()  # "now" is just after the history
    client, _ = await signed_in(fleet_portal, Role.VIEWER)
    async with aclosing(client):
        r = await client.get("/api/fleet/devices", headers=JSON)
    assert r.status_code == 200, r.text
    by_id = {d["id"]: d for d in r.json()}
    assert set(by_id) == {"dev-m130", "dev-canon", "dev-brother"}  # not d2's device
    m130 = by_id["dev-m130"]
    # 3 prtAlertTable entries + 2 detected error states (doorOpen, jammed) + black toner at 12 % (warning)
    assert m130["agent_online"] is True and m130["open_alerts"] == 6
    assert m130["last_reading_at"].startswith("2025-03-05T08:00:00")
    assert m130["lowest_supply"]["index"] == 1 and m130["lowest_supply"]["level"] == 28 - 16
    assert m130["lowest_supply"]["level_text"] == "12 %"
    assert by_id["dev-brother"]["agent_online"] is False
    assert by_id["dev-canon"]["last_reading_at"] is None and by_id["dev-canon"]["lowest_supply"] is None


async def test_device_detail_supplies_forecast_and_alerts(fleet_portal: FleetPortal) -> None:
    await _history(fleet_portal)
    fleet_portal.clock.offset = T0 + days(5) - fleet_portal.clock()
    client, _ = await signed_in(fleet_portal, Role.TECHNICIAN)
    async with aclosing(client):
        detail = (await client.get("/api/fleet/devices/dev-m130", headers=JSON)).json()
        supplies = (await client.get("/api/fleet/devices/dev-m130/supplies", headers=JSON)).json()
        alerts = (await client.get("/api/fleet/devices/dev-m130/alerts", headers=JSON)).json()
    assert detail["serial"] == "VNCRC48198" and len(detail["alerts"]) == 6
    black = next(s for s in supplies if s["index"] == 1)
    assert black["percent"] == 12.0
    # 4 points per day down from 28: 12 % left -> empty in 3 days
    assert black["empty_in_days"] == pytest.approx(3.0, abs=0.05) and black["forecast"] == "empty in ~3 days"
    steady = next(s for s in supplies if s["index"] == 5)
    assert steady["empty_in_days"] is None
    assert {a["code"] for a in alerts["open"]} == {
        "coverOpen", "markerTonerAlmostEmpty", "jam", "doorOpen", "jammed", "supplyLow"}
    assert alerts["recently_cleared"] == []


async def test_special_supply_levels_are_words_in_the_api(fleet_portal: FleetPortal) -> None:
    await _history(fleet_portal)
    client, _ = await signed_in(fleet_portal, Role.VIEWER)
    async with aclosing(client):
        supplies = (await client.get("/api/fleet/devices/dev-brother/supplies", headers=JSON)).json()
    special = [s for s in supplies if s["state"] != "known"]
    assert special and all(s["level"] is None for s in special)
    assert {s["level_text"] for s in special} == {"some remaining"}


async def test_readings_over_time_with_since_until_and_kind(fleet_portal: FleetPortal) -> None:
    await _history(fleet_portal)
    client, _ = await signed_in(fleet_portal, Role.VIEWER)
    async with aclosing(client):
        r = await client.get("/api/fleet/devices/dev-m130/readings", headers=JSON,
                             params={"since": "2025-03-02T08:00:00Z", "until": "2025-03-04T08:00:00+00:00",
                                     "kind": "supplies"})
        assert r.status_code == 200, r.text
        assert [x["taken_at"][:10] for x in r.json()] == ["2025-03-02", "2025-03-03", "2025-03-04"]
        assert all("supplies" in x["kinds"] for x in r.json())
        naive = await client.get("/api/fleet/devices/dev-m130/readings", headers=JSON,
                                 params={"since": "2025-03-05T08:00:00"})
        assert len(naive.json()) == 1
        swapped = await client.get("/api/fleet/devices/dev-m130/readings", headers=JSON,
                                   params={"since": "2025-03-04T00:00:00Z", "until": "2025-03-01T00:00:00Z"})
        assert swapped.status_code == 422 and "swap" in swapped.text
        bad_kind = await client.get("/api/fleet/devices/dev-m130/readings", headers=JSON, params={"kind": "toner"})
        assert bad_kind.status_code == 422


async def test_other_dealers_user_gets_404_for_every_fleet_endpoint(fleet_portal: FleetPortal) -> None:
    await _history(fleet_portal)
    client, _ = await signed_in(fleet_portal, Role.DEALER_ADMIN, dealer="d2")
    async with aclosing(client):
        listed = (await client.get("/api/fleet/devices", headers=JSON)).json()
        assert [d["id"] for d in listed] == ["dev-foreign"]
        for path in ("", "/readings", "/supplies", "/alerts"):
            r = await client.get(f"/api/fleet/devices/dev-m130{path}", headers=JSON)
            assert r.status_code == 404, (path, r.status_code)
            assert "VNCRC48198" not in r.text
        page = await client.get("/fleet/dev-m130")
        assert page.status_code == 404
        unknown = await client.get("/api/fleet/devices/no-such-device", headers=JSON)
        assert unknown.status_code == 404


async def test_customer_user_sees_only_its_customers_devices(fleet_portal: FleetPortal) -> None:
    await _history(fleet_portal)
    client, _ = await signed_in(fleet_portal, Role.CUSTOMER_ADMIN, dealer=None, customer="c2")
    async with aclosing(client):
        listed = (await client.get("/api/fleet/devices", headers=JSON)).json()
        assert [d["id"] for d in listed] == ["dev-brother"]
        assert (await client.get("/api/fleet/devices/dev-m130", headers=JSON)).status_code == 404
        assert (await client.get("/api/fleet/devices/dev-brother", headers=JSON)).status_code == 200


async def test_anonymous_is_refused_and_auditor_lacks_the_role(fleet_portal: FleetPortal) -> None:
    async with fleet_portal.client() as anon:
        assert (await anon.get("/api/fleet/devices", headers=JSON)).status_code == 401
        page = await anon.get("/fleet")
        assert page.status_code == 303 and page.headers["location"].startswith("/login")
    client, _ = await signed_in(fleet_portal, Role.AUDITOR)
    async with aclosing(client):
        assert (await client.get("/api/fleet/devices", headers=JSON)).status_code == 403


async def test_fleet_endpoints_are_in_the_openapi_schema(fleet_portal: FleetPortal) -> None:
    async with fleet_portal.client() as anon:
        schema = (await anon.get("/api/openapi.json")).json()
    paths = schema["paths"]
    for p in ("/api/fleet/devices", "/api/fleet/devices/{device_id}", "/api/fleet/devices/{device_id}/readings",
              "/api/fleet/devices/{device_id}/supplies", "/api/fleet/devices/{device_id}/alerts"):
        assert "get" in paths[p], p
    assert "/fleet" not in paths
    assert {"FleetDevicePublic", "SupplyPublic", "AlertPublic", "ReadingPublic"} <= set(schema["components"]["schemas"])


async def test_fleet_pages_render_status_words_and_charts(fleet_portal: FleetPortal) -> None:
    await _history(fleet_portal)
    fleet_portal.clock.offset = T0 + days(5) - fleet_portal.clock()
    client, _ = await signed_in(fleet_portal, Role.VIEWER)
    async with aclosing(client):
        table = await client.get("/fleet")
        page = await client.get("/fleet/dev-m130")
        brother = await client.get("/fleet/dev-brother")
    assert table.status_code == 200 and 'data-device-id="dev-m130"' in table.text
    assert "dev-foreign" not in table.text
    assert page.status_code == 200
    assert 'id="counter-chart"' in page.text and 'id="supply-chart"' in page.text and "<polyline" in page.text
    assert "empty in ~3 days" in page.text and "Paper jam in tray 2" in page.text
    assert "some remaining" in brother.text
    assert ">-3<" not in brother.text and "-3 " not in brother.text
