"""The technician's device list in SQL (issue 17 leftover: /devices for 20,000 printers): the
store's query selects, orders, counts and pages exactly as the pure definition in
``portal.device_list`` (``DeviceFilter.matches``, ``device_groups``) over every device, and its
status level is ``status_of``'s for every combination of state; on SQLite and PostgreSQL; a
dealer never sees another dealer's devices, whatever the filter names; ``GET /api/devices`` is
paged with ``Link`` and ``X-Total-Count``."""

from __future__ import annotations

import itertools
import re
from datetime import UTC, datetime, timedelta

import httpx
import sqlalchemy as sa

from portal.device_list import DeviceFilter, device_groups, page_groups
from portal.fleet.status import status_of
from printgate.domain import DeviceIdentity, Role
from printgate.store.db import Database
from printgate.store.device_list import DeviceListWhere, device_choices, device_list_page
from printgate.store.fleet import TenantScope, fleet_devices
from printgate.store.models.readings import DeviceStateRow
from printgate.testing.portal import create_user, sign_in
from printgate.testing.tenancy import Tenancy
from tests.portal.conftest import Portal

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
ALERT_SQL = sa.text(
    'INSERT INTO device_alerts (device_id, alert_key, alert_index, severity, "group", code, description, '
    "raised_at, last_seen_at) VALUES (:d, :k, 1, :sev, 'other', :code, '', :t, :t)")


async def _states(db: Database, states: list[dict[str, object]], alerts: list[dict[str, object]]) -> None:
    async with db.transaction() as s:
        if states:
            await s.execute(sa.insert(DeviceStateRow.__table__), states)
        for a in alerts:
            await s.execute(ALERT_SQL, a)


async def _all_pages(db: Database, dealer: str, where: DeviceListWhere, limit: int) -> tuple[list[str], int, int]:
    """Every page's devices in order (the page titles checked against the pure grouping by the caller)."""
    ids: list[str] = []
    offset, matching, total = 0, -1, -1
    while True:
        async with db.session() as s:
            page = await device_list_page(s, dealer, where, offset=offset, limit=limit)
        assert matching in (-1, page.matching) and total in (-1, page.total)
        matching, total = page.matching, page.total
        if page.offset != offset:  # past the end: the last page again
            assert offset >= matching > 0 and page.offset == (matching - 1) // limit * limit
            assert [f.device.id for f in page.devices] == ids[page.offset:]
            return ids, matching, total
        ids += [f.device.id for f in page.devices]
        if not page.devices:
            return ids, matching, total
        assert len(page.devices) <= limit
        offset += limit


async def test_status_level_in_sql_is_status_of_for_every_state(db: Database) -> None:
    t = Tenancy().dealer("dl").customer("c-on", "dl", "Online").site("s-on", "c-on").agent("a-on", "s-on", online=True)
    t.customer("c-off", "dl", "Offline").site("s-off", "c-off").agent("a-off", "s-off", online=False)
    grid = list(itertools.product(
        (None, "running", "warning", "testing", "down", "unknown", "odd"),  # hrDeviceStatus
        (None, "idle", "other"),  # hrPrinterStatus
        ((), ("lowPaper",), ("noPaper",), ("someNewState",), ("lowPaper", "jammed")),  # error states
        (None, "warning", "critical", "other"),  # the worst open alert
        (True, False),  # the agent online
        (True, False),  # a reading received
    ))
    states, alerts = [], []
    for n, (ds, ps, errors, alert, online, reading) in enumerate(grid):
        did, side = f"dev-{n:04d}", "on" if online else "off"
        t.device(did, f"s-{side}", f"a-{side}", f"10.1.{n // 250}.{n % 250}", name=f"P{n:04d}")
        states.append({"device_id": did, "device_status": ds, "printer_status": ps, "error_state": list(errors),
                       "last_reading_at": T0 if reading else None})
        if alert:
            alerts.append({"d": did, "k": "k1", "sev": alert, "code": "jam", "t": T0})
            if alert == "critical":  # beside a lesser one: the worst counts
                alerts.append({"d": did, "k": "k2", "sev": "warning", "code": "coverOpen", "t": T0 + timedelta(1)})
    t.device("dev-nostate", "s-on", "a-on", "10.2.0.1", name="never reported")
    await t.save(db)
    await _states(db, states, alerts)
    async with db.session() as s:
        devices = await fleet_devices(s, TenantScope(dealer_id="dl"))
    expected: dict[str, set[str]] = {}
    for f in devices:
        expected.setdefault(status_of(f).level, set()).add(f.device.id)
    assert set(expected) == {"ok", "warning", "error", "unknown"}
    for level in ("ok", "warning", "error", "unknown"):
        ids, matching, total = await _all_pages(db, "dl", DeviceListWhere(status=level), 500)
        assert set(ids) == expected[level], level
        assert matching == len(expected[level]) and total == len(grid) + 1
    open_alerts = {f.device.id for f in devices if f.open_alerts}
    assert set((await _all_pages(db, "dl", DeviceListWhere(alert="open"), 500))[0]) == open_alerts
    assert len((await _all_pages(db, "dl", DeviceListWhere(alert="none"), 500))[0]) == len(devices) - len(open_alerts)


def _fleet() -> Tenancy:
    """Two dealers; dealer d-a: three customers (one with two sites), names in mixed case, devices
    without a name (shown by serial, MAC, model), an offline site; dealer d-b: look-alikes."""
    t = Tenancy().dealer("d-a").dealer("d-b")
    t.customer("c-zeta", "d-a", "Zeta Labs").site("s-zeta", "c-zeta", "Main")
    t.customer("c-acme", "d-a", "acme corp").site("s-acme-w", "c-acme", "Warehouse").site("s-acme-o", "c-acme", "Office")
    t.customer("c-bravo", "d-a", "Bravo").site("s-bravo", "c-bravo", "HQ")
    t.customer("c-other", "d-b", "Acme Other").site("s-other", "c-other", "Office")
    for site, online in (("s-zeta", True), ("s-acme-w", True), ("s-acme-o", False), ("s-bravo", True),
                         ("s-other", True)):
        t.agent(f"a-{site}", site, online=online)
    names = ["Printer 12", "printer 3", "Front desk", "", "alpha MFP", "Beta plotter", "Printer 120", "zz",
             "Étage copier", "Printer 12 b"]
    n = 0
    for site in ("s-zeta", "s-acme-w", "s-acme-o", "s-bravo", "s-other"):
        for i, name in enumerate(names):
            ident = DeviceIdentity(serial=f"SN-{site}-{i}" if i % 3 else None, mac=f"aa:bb:{n:02x}" if i % 2 else None,
                                   model="HP M404" if i % 4 else "Ricoh 12")
            t.device(f"dev-{site}-{i}", site, f"a-{site}", f"10.9.{n}.{i + 1}", ident, name=name)
            n += 1
    return t


async def test_pages_from_sql_are_the_pure_lists_pages_and_dealers_stay_apart(db: Database) -> None:
    await _fleet().save(db)
    states = [{"device_id": f"dev-{site}-{i}", "device_status": ds, "printer_status": "idle", "error_state": errors,
               "last_reading_at": T0}
              for site in ("s-zeta", "s-acme-w", "s-acme-o", "s-bravo", "s-other")
              for i, (ds, errors) in enumerate(itertools.islice(itertools.cycle(
                  [("running", []), ("down", []), ("warning", ["lowPaper"]), ("running", ["jammed"])]), 9))]
    alerts = [{"d": f"dev-{site}-{i}", "k": "k", "sev": "warning", "code": "jam", "t": T0}
              for site in ("s-zeta", "s-acme-o", "s-other") for i in (0, 4, 5)]
    await _states(db, states, alerts)
    async with db.session() as s:
        everything = await fleet_devices(s, TenantScope(dealer_id="d-a"))
        choices = await device_choices(s, "d-a")
    assert len(everything) == 40
    assert {c for c, _ in choices.customers} == {"c-zeta", "c-acme", "c-bravo"}
    assert {i for i, _, _ in choices.sites} == {"s-zeta", "s-acme-w", "s-acme-o", "s-bravo"}
    filters = [
        DeviceFilter.of(), DeviceFilter.of(group="site"), DeviceFilter.of(group="none"),
        DeviceFilter.of(q="printer 12"), DeviceFilter.of(q="PRINTER"), DeviceFilter.of(q="acme office"),
        DeviceFilter.of(q="sn-s-zeta"), DeviceFilter.of(q="aa:bb"), DeviceFilter.of(q="ricoh"),
        DeviceFilter.of(q="10.9.1"), DeviceFilter.of(q="100%"), DeviceFilter.of(q="_"),
        DeviceFilter.of(q="hp m404", group="none"), DeviceFilter.of(customer="c-acme", group="site"),
        DeviceFilter.of(site="s-acme-o"), DeviceFilter.of(status="error"), DeviceFilter.of(status="warning"),
        DeviceFilter.of(status="unknown", group="none"), DeviceFilter.of(status="ok"),
        DeviceFilter.of(alert="open"), DeviceFilter.of(alert="none", group="site"),
        DeviceFilter.of(q="printer", status="ok", alert="none", group="site"),
        # another dealer's customer, site and names: nothing of theirs
        DeviceFilter.of(customer="c-other"), DeviceFilter.of(site="s-other"), DeviceFilter.of(q="acme other"),
    ]
    for flt in filters:
        pure = device_groups(everything, flt)
        want = [e.fleet.device.id for g in pure for e in g.entries]
        for limit in (7, 100):
            got, matching, total = await _all_pages(db, "d-a", flt.where(), limit)
            assert got == want, (flt, limit)
            assert matching == len(want) and total == 40, flt
        async with db.session() as s:  # one page cut in its groups, titles as the pure list has them
            page = await device_list_page(s, "d-a", flt.where(), offset=7, limit=7)
        titles = {e.fleet.device.id: g.title for g in pure for e in g.entries}
        assert all(titles[e.fleet.device.id] == g.title for g in page_groups(page.devices, flt.group) for e in g.entries)
    # the site grouping: by customer (the database's order: byte order here), a customer's sites by name
    got = (await _all_pages(db, "d-a", DeviceFilter.of(group="site").where(), 100))[0]
    assert [d.rsplit("-", 1)[0] for d in got][::10] == ["dev-s-bravo", "dev-s-zeta", "dev-s-acme-o", "dev-s-acme-w"]
    async with db.session() as s:
        theirs = await device_list_page(s, "d-b", DeviceListWhere(), offset=0, limit=100)
        nobody = await device_list_page(s, "d-none", DeviceListWhere(), offset=0, limit=100)
    assert {f.device.site_id for f in theirs.devices} == {"s-other"} and theirs.total == 10
    assert nobody.devices == [] and nobody.total == 0


ROW = re.compile(r'<tr data-device-id="([^"]+)">')


async def test_api_devices_pages_with_link_and_total(portal: Portal, client: httpx.AsyncClient) -> None:
    t = Tenancy().dealer("d-api").customer("c-api", "d-api", "API customer").site("s-api", "c-api")
    t.agent("a-api", "s-api", online=True)
    for i in range(25):
        t.device(f"dev-api-{i:02d}", "s-api", "a-api", f"10.77.0.{i + 1}", DeviceIdentity(serial=f"SN-API-{i}"),
                 name=f"API printer {i:02d}")
    await t.save(portal.db)
    user, secret = await create_user(portal.db, Role.TECHNICIAN, dealer="d-api")
    await sign_in(client, portal, user, secret)
    json = {"accept": "application/json"}
    first = await client.get("/api/devices", params={"limit": "10"}, headers=json)
    assert first.status_code == 200 and first.headers["x-total-count"] == "25"
    assert [d["id"] for d in first.json()] == [f"dev-api-{i:02d}" for i in range(10)]
    assert set(first.json()[0]) == {"id", "name", "customer", "model", "serial", "blocked"}  # the shape kept
    seen, url = [], "/api/devices?limit=10"
    while url:
        r = await client.get(url, headers=json)
        seen += [d["id"] for d in r.json()]
        nxt = re.search(r'<([^>]+)>; rel="next"', r.headers.get("link", ""))
        url = nxt.group(1) if nxt else ""
    assert seen == [f"dev-api-{i:02d}" for i in range(25)]
    last = await client.get("/api/devices", params={"limit": "10", "offset": "20"}, headers=json)
    assert 'rel="prev"' in last.headers["link"] and 'rel="next"' not in last.headers["link"]
    assert len((await client.get("/api/devices", headers=json)).json()) == 25  # the default page: 100
    assert (await client.get("/api/devices", params={"limit": "1001"}, headers=json)).status_code == 422
    assert (await client.get("/api/devices", params={"offset": "-1"}, headers=json)).status_code == 422
    # the devices page of this dealer: its own only
    assert sorted(ROW.findall((await client.get("/devices")).text)) == [f"dev-api-{i:02d}" for i in range(25)]
