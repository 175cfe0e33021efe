"""Issue 21 F4 (budgets): the session budget must not lock out an ordinary technician.

Through the real proxy, against a device that logs every request reaching it: a page that
polls a status URL (with and without a ``?_=<ms>`` cache-buster, as jQuery's ``cache: false``
does) thousands of times and navigation between the device's own pages cost almost nothing
(an address already sent costs 1 byte, a timestamp 3); past the budget, pages already opened
keep loading while new data is refused with a page that says how much and when the tally
starts afresh; and data trickled in distinct path segments or query text is still refused.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from gateway.proxy.limits import ProxyLimits
from gateway.proxy.routes import SessionRoute
from tests.proxy.conftest import ProxyHarness, SessionClient
from tests.proxy.hostile_device import HostileDevice

BUDGET = ProxyLimits().session_budget
WINDOW_H = ProxyLimits().budget_window_s / 3600
PROSE = (
    "The front desk printer sits next to the reception counter on the second floor, "
    "north wing; call the facilities desk before moving it. "
)
LINKS = ["/", "/fetch/data", "/sink/status.html", "/sink/supplies.html", "/sink/network/settings.html",
         "/sink/network/ipv4.html", "/sink/security/accounts.html", "/sink/jobs/log.html",
         "/sink/counters.html", "/sink/trays.html", "/sink/style/main.css", "/sink/js/ews.js",
         "/sink/img/logo.png", "/sink/img/toner-black.png", "/sink/img/toner-cyan.png"]


@pytest.fixture(scope="module")
async def device() -> AsyncIterator[HostileDevice]:
    async with HostileDevice() as d:
        yield d


def technician(harness: ProxyHarness, device: HostileDevice) -> SessionClient:
    """A session of a fresh user on a fresh device (the tally is per user and device)."""
    sid = uuid.uuid4().hex[:12]
    route = SessionRoute(
        session_id=sid, host=harness.proxy.session_host(sid), upstream_host=device.host,
        upstream_port=device.port, device_origin=device.origin, device_scheme="http",
        pinned_fingerprint=None, expires_at=datetime.now(UTC) + timedelta(minutes=30),
        idle_timeout_s=600, device_label="Front desk", customer_name="ACME",
        user_id=f"tech-{sid}", device_id=f"dev-{sid}",
    )
    harness.routes.add(route)
    return SessionClient(harness, route)


def settings_form(i: int, size: int) -> dict[str, Any]:
    """A settings form of about ``size`` bytes of prose (fields of at most 6000: under 8 KiB)."""
    text = (PROSE * (size // len(PROSE) + 1))[:size]
    return {"data": {f"field{j}": f"{i} {text[k : k + 6000]}" for j, k in enumerate(range(0, size, 6000))}}


async def spend(client: SessionClient, leave: int) -> int:
    """Save settings forms (plain prose, 12 KB each) until ``leave`` to ``leave`` + 13 KB of the
    session budget remain (the form bodies and their address); the bytes sent."""
    sent = 0
    while True:
        form = settings_form(sent, 12_000)
        cost = len(urlencode(form["data"])) + len("/sink/settings.cgi")
        if BUDGET - sent - cost < leave:
            return sent
        r = await client.request("POST", "/sink/settings.cgi", **form)
        assert r.status_code == 200, r.text[:300]
        sent += cost


async def exhaust(client: SessionClient) -> httpx.Response:
    """Save ever smaller forms until even one of ~15 bytes is refused; that refusal."""
    await spend(client, leave=0)
    for size in (3000, 300, 30, 1):
        while (r := await client.request("POST", "/sink/settings.cgi", **settings_form(1, size))).status_code == 200:
            pass
    return r


def poll_url(i: int, cache_buster: bool) -> str:
    return f"/sink/status.json?_={int(time.time() * 1000) + i}" if cache_buster else "/sink/status.json"


async def browse(client: SessionClient, polls: int) -> list[tuple[str, int]]:
    """A technician's afternoon in a burst: the status page polls (half with a cache-buster),
    and they click around the device's own pages and assets between polls; (path, status)
    of every request that was not answered 200."""
    failed: list[tuple[str, int]] = []

    async def worker(k: int) -> None:
        for i in range(k, polls, 4):
            path = poll_url(i, cache_buster=i % 2 == 0)
            if i % 5 == 0:
                path = LINKS[(i // 5) % len(LINKS)]
            r = await client.request("GET", path, headers={"x-requested-with": "XMLHttpRequest"}
                                     if "status" in path else {})
            if r.status_code != 200:
                failed.append((path, r.status_code))

    await asyncio.gather(*(worker(k) for k in range(4)))
    return failed


async def test_polling_and_navigation_never_lock_out_a_technician(harness: ProxyHarness, device: HostileDevice):
    """A technician who already saved settings forms (all but 20 KB of the budget) then keeps
    the status page open: 2000 polls and page views (an hour of a page polling every 2 s).
    On the old code every request's path counted (~30 bytes a poll) and the budget ran out
    after ~700 of them; now they cost about 5 KB."""
    client = technician(harness, device)
    await client.launch()
    try:
        await spend(client, leave=20_000)
        mark = len(device.state.log)
        failed = await browse(client, polls=2000)
        assert failed == [], (len(failed), failed[:5])
        assert len(device.state.log) - mark == 2000
        r = await client.request("POST", "/sink/settings.cgi", data={"contact": "Jane Doe, ext. 4411"})
        assert r.status_code == 200, r.text[:300]  # and a small form can still be saved
    finally:
        await client.aclose()


async def test_past_the_budget_seen_pages_load_and_new_data_is_refused_with_its_reset_time(
    harness: ProxyHarness, device: HostileDevice
):
    client = technician(harness, device)
    await client.launch()
    try:
        for path in [*LINKS, poll_url(0, True), poll_url(0, False)]:
            assert (await client.request("GET", path)).status_code == 200
        r = await exhaust(client)
        assert r.status_code == 403 and "Blocked by policy" in r.text
        text = re.sub(r"\s+", " ", r.text)
        assert re.search(rf"You have already sent \d+ bytes of your own data .* would pass the {BUDGET}-byte "
                         "session budget", text), text
        found = re.search(r"starts afresh at about (\d{4}-\d\d-\d\d \d\d:\d\d) UTC", text)
        assert found is not None, text
        resets = datetime.strptime(found.group(1), "%Y-%m-%d %H:%M").replace(tzinfo=UTC)
        expected = datetime.now(UTC) + timedelta(hours=WINDOW_H)
        assert abs((resets - expected).total_seconds()) < 15 * 60, (resets, expected)
        assert "pages you already opened keep loading" in text
        events = await harness.events(client.route.session_id)
        assert any(e.type == "dwa.transfer_blocked" and e.details["rule"] == "budget.session" for e in events)

        # looking at the device still works: its pages, assets and the status poll
        mark = len(device.state.log)
        sent_ts = int(time.time() * 1000) - 20 * 60 * 1000  # a browser clock 20 minutes slow
        for path in [*LINKS, f"/sink/status.json?_={sent_ts}", "/sink/status.json"]:
            r = await client.request("GET", path)
            assert r.status_code == 200, (path, r.text[:300])
        # the browser's timestamp did not reach the device: the proxy's clock did
        polled = [e.raw for e in device.state.log[mark:] if e.raw.startswith(b"GET /sink/status.json?_=")]
        assert len(polled) == 1 and str(sent_ts).encode() not in polled[0]
        stamp = int(re.match(rb"GET /sink/status.json\?_=(\d+)", polled[0]).group(1))  # type: ignore[union-attr]
        assert abs(stamp / 1000 - time.time()) < 60

        # new data is refused: a page never opened, a form field, a query value not seen
        for method, path, kw in [("GET", "/sink/never/opened.html", {}),
                                 ("POST", "/sink/settings.cgi", {"data": {"contact": "Jane Doe, ext. 4411"}}),
                                 ("GET", "/sink/status.json?filter=toner", {})]:
            before = len(device.state.log)
            r = await client.request(method, path, **kw)
            assert r.status_code == 403, (path, r.status_code)
            assert len(device.state.log) == before
    finally:
        await client.aclose()


async def test_seen_requests_past_the_budget_go_on_at_about_one_a_second(
    harness: ProxyHarness, device: HostileDevice
):
    """Which of the seen addresses a request picks can carry a few bits: once the budget is
    spent, such requests pass 60 at once and then about one a second, not as fast as a script
    can send them (too many waiting are refused, audited)."""
    client = technician(harness, device)
    await client.launch()
    try:
        for path in LINKS:
            assert (await client.request("GET", path)).status_code == 200
        await exhaust(client)  # up to 15 bytes may be left: 15 more seen requests at 1 byte each
        started = time.monotonic()
        statuses = [(await client.request("GET", LINKS[i % len(LINKS)])).status_code for i in range(82)]
        took = time.monotonic() - started
        assert statuses == [200] * 82  # the last ones waited for their turn (at most 5 s each)
        assert took >= 6, took
        many = await asyncio.gather(*(client.request("GET", "/") for _ in range(12)))
        codes = sorted(r.status_code for r in many)
        assert 403 in codes and codes.count(200) >= 4, codes  # 5 s of turns at most, then refused
        refused = next(r for r in many if r.status_code == 403)
        assert "about one request a second" in re.sub(r"\s+", " ", refused.text)
    finally:
        await client.aclose()


async def test_data_trickled_in_distinct_path_segments_or_query_text_is_refused(
    harness: ProxyHarness, device: HostileDevice
):
    """The attacker's case stays closed: prose in a new path segment or query value on every
    request costs its length, so the budget refuses the trickle, audited, and the device
    never sees the pieces after the refusal."""
    for where in ("path", "query"):
        client = technician(harness, device)
        await client.launch()
        try:
            sent = 0
            r: httpx.Response | None = None
            while sent < 200:
                piece = f"{sent:04d}-" + PROSE.replace(" ", "-") * 25  # ~3.3 KB, plain words
                path = f"/sink/{piece}" if where == "path" else f"/sink/q?note={piece}"
                r = await client.request("GET", path)
                if r.status_code != 200:
                    break
                sent += 1
            assert r is not None and r.status_code == 403, (where, sent)
            assert BUDGET // 3400 <= sent <= BUDGET // 3200 + 1, (where, sent)
            assert not device.state.saw(f"{sent:04d}-".encode())
            events = await harness.events(client.route.session_id)
            assert [e.details["rule"] for e in events if e.type == "dwa.transfer_blocked"] == ["budget.session"]
        finally:
            await client.aclose()


async def test_a_device_cookie_is_free_on_a_user_and_device_tally(harness: ProxyHarness, device: HostileDevice):
    """The device's own session token (a long base64url cookie) sent back is neither checked
    nor counted when the session names its user and device (it was remembered on the session's
    tally, not the user's on the device, and refused as an encoded cookie)."""
    client = technician(harness, device)
    await client.launch()
    try:
        r = await client.request("GET", "/signin")
        assert r.status_code == 200
        token = r.headers["set-cookie"].split(";", 1)[0]
        r = await client.request("GET", "/fetch/data", headers={"cookie": token})
        assert r.status_code == 200, r.text[:300]
    finally:
        await client.aclose()

