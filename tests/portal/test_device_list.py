"""The technician's device list: search, filters, grouping, badges, on the served portal
(tenants kept apart) and on plain data for the status/alert/supply selection."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import httpx

from portal.device_list import DeviceFilter, device_groups
from printgate.domain import (
    AgentId,
    CustomerId,
    Device,
    DeviceId,
    DeviceIdentity,
    FleetDevice,
    Role,
    SiteId,
    SupplyLevel,
)
from printgate.testing.portal import create_user, sign_in
from tests.portal.conftest import Portal

ROW = re.compile(r'<tr data-device-id="([^"]+)">')


async def _ids(client: httpx.AsyncClient, **params: str) -> list[str]:
    r = await client.get("/devices", params=params)
    assert r.status_code == 200, r.text
    return ROW.findall(r.text)


async def test_search_filters_and_grouping_on_the_served_portal(portal: Portal, client: httpx.AsyncClient) -> None:
    user, secret = await create_user(portal.db, Role.TECHNICIAN)
    await sign_in(client, portal, user, secret)
    assert sorted(await _ids(client)) == ["dev-c-appr", "dev-c-never", "dev-c-open"]  # not dealer d2's
    assert await _ids(client, q="finance") == ["dev-c-appr"]
    assert await _ids(client, q="sn-c-open") == ["dev-c-open"]  # serial
    assert await _ids(client, q="customer c-never lab") == ["dev-c-never"]  # every word somewhere
    assert await _ids(client, customer="c-appr") == ["dev-c-appr"]
    assert await _ids(client, site="s-c-open") == ["dev-c-open"]
    assert await _ids(client, customer="c-other") == []  # another dealer's customer: nothing
    assert await _ids(client, alert="open") == []
    assert sorted(await _ids(client, status="bogus")) == ["dev-c-appr", "dev-c-never", "dev-c-open"]

    page = (await client.get("/devices")).text
    assert '<meta name="viewport"' in page
    assert re.search(r"<h2>Customer c-open <span", page)  # grouped by customer
    assert 'href="/fleet/dev-c-open"' in page  # the fleet detail
    assert "HP M404" in page  # the model, as the name does not say it
    flat = (await client.get("/devices", params={"group": "none"})).text
    assert "<h2>" not in flat.split("</form>", 1)[1]
    empty = (await client.get("/devices", params={"q": "nothing like this"})).text
    assert "No device matches" in empty and "0 of 3 devices" in empty


def _fleet(name: str, *, customer: str = "c1", status: str | None = "running", alerts: int = 0,
           toner: int | None = None, model: str | None = None) -> FleetDevice:
    device = Device(DeviceId(f"dev-{name}"), SiteId(f"s-{customer}"), AgentId("a1"), "10.0.0.1",
                    DeviceIdentity(serial=f"SN{name}", model=model or name), name=name)
    supply = [SupplyLevel(1, "Black toner", "toner", "black", "percent", 100, toner)] if toner is not None else []
    return FleetDevice(device, CustomerId(customer), f"Customer {customer}", f"Site {customer}",
                       agent_online=True, last_reading_at=datetime.now(UTC) if status else None,
                       device_status=status, open_alerts=alerts,
                       lowest_supply=supply[0] if supply else None)


def test_status_alert_and_supply_selection() -> None:
    devices = [_fleet("ok"), _fleet("down", status="down", alerts=2), _fleet("new", status=None),
               _fleet("low", customer="c2", toner=7), _fleet("full", customer="c2", toner=80)]

    def names(**kw: str) -> list[str]:
        return [e.name for g in device_groups(devices, DeviceFilter.of(**kw)) for e in g.entries]

    assert names(status="error") == ["down"]
    assert names(status="unknown") == ["new"]
    assert names(alert="open") == ["down"]
    assert sorted(names(alert="none")) == ["full", "low", "new", "ok"]
    groups = device_groups(devices, DeviceFilter.of(group="customer"))
    assert [(g.title, len(g.entries), g.alerts) for g in groups] == [("Customer c1", 3, 1), ("Customer c2", 2, 0)]
    by_name = {e.name: e for g in groups for e in g.entries}
    assert by_name["low"].supply == "Black toner: 7 %" and by_name["low"].supply_low
    assert not by_name["full"].supply_low and by_name["ok"].supply is None
    assert by_name["ok"].model is None  # the name already says the model
