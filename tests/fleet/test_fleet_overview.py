"""The fleet overview at scale: counts by SQL aggregates, a paged, sorted, filtered
table (HTML) and a paged JSON API with ``Link: rel="next"``, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from contextlib import aclosing

import httpx

from fleet.ingest import ingest_payload
from printgate.domain import DeviceIdentity, Role
from printgate.fleet_alerts import SupplyThresholds
from printgate.store.readings_state import set_thresholds_of_tenant
from printgate.testing.tenancy import Tenancy
from tests.fleet.conftest import T0, FleetPortal, days, payload_of, reading_of, signed_in

JSON = {"accept": "application/json"}
EXTRA = 130  # quiet devices of c1 beside the seeded ones: more than two pages of 50


async def _big_fleet(fp: FleetPortal) -> None:
    t = Tenancy()
    for i in range(EXTRA):
        t.device(f"dev-q{i:03d}", "s-c1", "a-c1", f"127.0.21.{i}", DeviceIdentity(serial=f"Q{i:05d}", model="quiet"),
                 name=f"Quiet {i:03d}")
    await t.save(fp.db, now=T0)
    alerts = reading_of("lab-jetdirect_m130nw-alerts", ip="127.0.20.15", at=T0)  # critical alerts on the M130
    assert await ingest_payload(fp.db, "a-c1", "b-m130", payload_of([alerts])) is True
    fp.clock.offset = T0 + days(1) - fp.clock()


def _next_link(r: httpx.Response) -> str | None:
    found = re.search(r'<([^>]+)>; rel="next"', r.headers.get("link", ""))
    return found.group(1) if found else None


async def test_api_pages_with_next_links_until_every_device_was_listed_once(fleet_portal: FleetPortal) -> None:
    await _big_fleet(fleet_portal)
    client, _ = await signed_in(fleet_portal, Role.VIEWER)
    seen: list[str] = []
    async with aclosing(client):
        url: str | None = "/api/fleet/devices?limit=40"
        pages = 0
        while url is not None and pages < 10:
            r = await client.get(url, headers=JSON)
            assert r.status_code == 200, r.text
            assert r.headers["x-total-count"] == str(EXTRA + 3)
            body = r.json()
            assert len(body) <= 40 and {"id", "status_text", "open_alerts", "lowest_supply"} <= set(body[0])
            seen += [d["id"] for d in body]
            url, pages = _next_link(r), pages + 1
        first = await client.get("/api/fleet/devices", headers=JSON)
        assert len(first.json()) == 100 and _next_link(first) is not None  # default: 100 a page
        last = await client.get("/api/fleet/devices?limit=40&offset=120", headers=JSON)
        assert 'rel="prev"' in last.headers["link"] and _next_link(last) is None
    assert pages == 4 and len(seen) == EXTRA + 3 == len(set(seen))
    assert "dev-foreign" not in seen  # another dealer's, never on any page


async def test_api_worst_first_and_filters(fleet_portal: FleetPortal) -> None:
    await _big_fleet(fleet_portal)
    client, _ = await signed_in(fleet_portal, Role.VIEWER)
    async with aclosing(client):
        worst = (await client.get("/api/fleet/devices?sort=attention&limit=3", headers=JSON)).json()
        alerting = await client.get("/api/fleet/devices?problem=alerts", headers=JSON)
        offline = (await client.get("/api/fleet/devices?problem=offline", headers=JSON)).json()
        found = (await client.get("/api/fleet/devices", params={"q": "quiet 12"}, headers=JSON)).json()
        by_customer = await client.get("/api/fleet/devices?customer_id=c2", headers=JSON)
        wildcard = (await client.get("/api/fleet/devices", params={"q": "%"}, headers=JSON)).json()
        bad = await client.get("/api/fleet/devices?problem=everything", headers=JSON)
        too_many = await client.get("/api/fleet/devices?limit=5000", headers=JSON)
    assert worst[0]["id"] == "dev-m130" and worst[0]["status_level"] == "error"
    assert worst[1]["id"] == "dev-brother"  # its site's agent is offline: before the quiet ones
    assert [d["id"] for d in alerting.json()] == ["dev-m130"] and alerting.headers["x-total-count"] == "1"
    assert [d["id"] for d in offline] == ["dev-brother"]
    assert sorted(d["id"] for d in found) == [f"dev-q{i:03d}" for i in range(120, 130)]
    assert [d["id"] for d in by_customer.json()] == ["dev-brother"]
    assert wildcard == []  # a % in the text is a character, not a wildcard
    assert bad.status_code == 422 and too_many.status_code == 422


async def test_overview_page_counts_pages_and_filters(fleet_portal: FleetPortal) -> None:
    await _big_fleet(fleet_portal)
    async with fleet_portal.db.transaction() as s:  # the M130's black toner (28 %) is low at 30 %
        await set_thresholds_of_tenant(s, "d1", SupplyThresholds(30, 5), by="admin@d1.test", now=T0)
    client, _ = await signed_in(fleet_portal, Role.VIEWER)
    async with aclosing(client):
        first = await client.get("/fleet")
        third = await client.get("/fleet?page=3")
        critical = await client.get("/fleet?problem=critical")
        beyond = await client.get("/fleet?page=9")
        customer = await client.get("/fleet?customer=c2")
        found = await client.get("/fleet", params={"q": "Quiet 12"})
        found_beyond = await client.get("/fleet", params={"q": "Quiet 12", "page": "2"})
    assert first.status_code == 200
    rows = re.findall(r'<tr data-device-id="([^"]+)"', first.text)
    assert len(rows) == 50 and rows[0] == "dev-m130"  # one page, the worst first
    counts = dict(re.findall(r'data-problem="(\w+)"[^>]*><a [^>]*><strong>([\d,]+)</strong>', first.text))
    assert counts == {"critical": "1", "attention": "1", "alerts": "1", "low_supply": "1", "offline": "1",
                      "no_reading": str(EXTRA + 2)}
    assert f"{EXTRA + 3} devices" in first.text and "Showing 1\u201350 of 133" in first.text
    assert 'href="/fleet?page=2" rel="next"' in first.text
    third_rows = re.findall(r'<tr data-device-id="([^"]+)"', third.text)
    assert len(third_rows) == EXTRA + 3 - 100 and 'rel="prev"' in third.text and 'rel="next"' not in third.text
    assert not set(third_rows) & set(rows)
    assert re.findall(r'<tr data-device-id="([^"]+)"', critical.text) == ["dev-m130"]
    assert beyond.status_code == 200 and "No device on this page matches." in beyond.text
    assert re.findall(r'<tr data-device-id="([^"]+)"', customer.text) == ["dev-brother"]
    assert re.findall(r'<li data-agent-id="([^"]+)"', customer.text) == ["a-c2"]  # that customer's sites
    assert 'href="/fleet?customer=c2"' in first.text  # the customer's name leads there
    # a search: the counts stay the whole fleet's, the table and its total are the matches only
    assert sorted(re.findall(r'<tr data-device-id="([^"]+)"', found.text)) == [f"dev-q{i}" for i in range(120, 130)]
    assert f"{EXTRA + 3} devices" in found.text and "Showing 1\u201310 of 10 matching" in found.text
    assert "No device on this page matches." in found_beyond.text and 'rel="next"' not in found_beyond.text
