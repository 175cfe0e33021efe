"""Issue 21 round 4 (f21d): request headers the session budget did not count.

The budget counted only header fields a page *script* may set; the Fetch standard's forbidden
ones (``User-Agent``, ``Referer``, ``Origin``, ``Priority``, ``DNT``, ``Accept-Encoding``, every
``Sec-*`` and ``Proxy-*`` name, ...) went to the device unchecked and free. The issue's attacker
has full control of what the browser sends (the session cookie in curl), so a file moved 1 KB a
request in any of them reached the device without limit. Through a real DwaProxy against the
hostile device (which logs every request reaching it), on a proxy with an 8 KiB session budget:
each such header either carries nothing of the file to the device (the proxy normalises it:
``Referer`` only as a page this session requested, else its origin; ``Origin`` only as the
session's; ``Sec-Fetch-*`` only with the values browsers send; the WebSocket key regenerated)
or costs the budget what it carries, refused past it (audited with attribution), the session
still serving its pages after.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest

from printgate.testing.audit import ReadableAuditLog
from tests.proxy.budget_harness import budget_of, budget_proxy
from tests.proxy.budget_harness import technician as new_technician
from tests.proxy.conftest import ProxyHarness, SessionClient
from tests.proxy.hostile_device import HostileDevice

BUDGET = 8192
CHUNK = 1024
WORDS = ("toner drum paper tray fuser scan copy fax page jam door cover duplex staple colour black "
         "cyan magenta yellow waste belt roller feed sheet queue print job user admin network port "
         "status ready sleep warm error service counter meter supply level low empty full open").split()


@pytest.fixture(scope="module")
async def small(audit_db: ReadableAuditLog) -> AsyncIterator[ProxyHarness]:
    """A proxy whose session budget is 8 KiB."""
    async with budget_proxy(audit_db, BUDGET) as h:
        yield h


@pytest.fixture(scope="module")
async def device() -> AsyncIterator[HostileDevice]:
    async with HostileDevice() as d:
        yield d


async def technician(h: ProxyHarness, device: HostileDevice) -> SessionClient:
    return await new_technician(h, device, "hd")


def text_file(seed: int, size: int) -> str:
    """A document as plain words (passes every encoded-content check: only the budget bounds it)."""
    rnd = random.Random(seed)
    out = ""
    while len(out) < size:
        out += rnd.choice(WORDS) + "."
    return out[:size]


def token_file(seed: int, size: int) -> str:
    """The same for a header *name* (a token: letters and dashes)."""
    return text_file(seed, size).replace(".", "-")


async def assert_refused_with_attribution(h: ProxyHarness, client: SessionClient) -> None:
    events = await h.events(client.route.session_id)
    blocked = [e for e in events if e.type == "dwa.transfer_blocked"
               and str(e.details.get("rule", "")).startswith(("budget.", "upload.headers"))]
    assert blocked, sorted({(e.type, str(e.details.get("rule"))) for e in events})
    found = blocked[-1]
    route = client.route
    expected = {"dealer_id": route.dealer_id, "customer_id": route.customer_id, "site_id": route.site_id,
                "device_id": route.device_id, "user_id": route.user_id, "session_id": route.session_id}
    got = {k: getattr(found, k, None) or found.details.get(k) for k in expected}
    assert got == expected, (got, found)


# (header name, how the chunk is put in it); "{}" is the chunk, "{origin}" the session origin
ATTACKS = {
    "user-agent": ("user-agent", "Mozilla/5.0 {}"),
    "referer": ("referer", "{origin}/{}"),
    "referer-query": ("referer", "{origin}/?q={}"),
    "origin": ("origin", "http://{}"),
    "priority": ("priority", "u=1, {}"),
    "dnt": ("dnt", "{}"),
    "accept-encoding": ("accept-encoding", "gzip, {}"),
    "accept-charset": ("accept-charset", "{}"),
    "upgrade-insecure-requests": ("upgrade-insecure-requests", "{}"),
    "access-control-request-headers": ("access-control-request-headers", "{}"),
    "access-control-request-method": ("access-control-request-method", "{}"),
    "date": ("date", "{}"),
    "via": ("via", "{}"),
    "sec-fetch-site": ("sec-fetch-site", "{}"),
    "sec-fetch-dest": ("sec-fetch-dest", "{}"),
    "sec-ch-ua": ("sec-ch-ua", '"{}";v="1"'),
    "sec-websocket-protocol": ("sec-websocket-protocol", "{}"),
    "sec-anything": ("sec-purpose", "{}"),
    "proxy-anything": ("proxy-note", "{}"),
    "keep-alive": ("keep-alive", "{}"),
    "cookie2": ("cookie2", "{}"),
    "te": ("te", "trailers, {}"),
    "trailer": ("trailer", "{}"),
    "connection": ("connection", "keep-alive, {}"),
    "expect": ("expect", "{}"),
    "accept-language": ("accept-language", "en, {}"),
    "x-requested-with": ("x-requested-with", "{}"),
}


@pytest.mark.parametrize("attack", sorted(ATTACKS))
async def test_a_file_in_a_browser_set_header_is_bounded_by_the_budget(
    small: ProxyHarness, device: HostileDevice, attack: str
) -> None:
    """32 KB as 1 KB a request in one header the browser (not a script) sets. On the old code all
    32 KB reached the device for free. Now what reaches it is at most the budget spent (the
    header costs what it carries, refused past the budget, audited) or nothing (normalised)."""
    name, template = ATTACKS[attack]
    client = await technician(small, device)
    tally = budget_of(small).ledger_of(client.route)
    file = text_file(hash(attack) & 0xFFFF, 32 * CHUNK)
    try:
        assert (await client.request("GET", "/")).status_code == 200
        before = tally.used
        mark = len(device.state.log)
        refused = 0
        for off in range(0, len(file), CHUNK):
            chunk = file[off : off + CHUNK]
            value = template.replace("{origin}", client.origin).replace("{}", chunk)
            r = await client.request("GET", "/fetch/data", headers={name: value})
            refused += r.status_code != 200
        arrived = sum(len(file[off : off + CHUNK]) for off in range(0, len(file), CHUNK)
                      if device.state.saw(file[off : off + CHUNK].encode(), mark))
        assert arrived <= tally.used - before, (attack, arrived, tally.used - before)
        assert arrived <= BUDGET, (attack, arrived)
        if arrived:  # counted: refused past the budget, audited with attribution
            assert refused, attack
            await assert_refused_with_attribution(small, client)
        # the same session still serves its pages (a seen shape goes on past the budget)
        r = await client.request("GET", "/")
        assert r.status_code == 200, (attack, r.text[:300])
    finally:
        await client.aclose()


async def test_a_file_in_header_names_the_proxy_did_not_count(small: ProxyHarness, device: HostileDevice) -> None:
    """``Sec-``/``Proxy-`` names were skipped whatever followed: the name itself carried the file."""
    client = await technician(small, device)
    tally = budget_of(small).ledger_of(client.route)
    file = token_file(77, 32 * CHUNK)
    try:
        before = tally.used
        mark = len(device.state.log)
        refused = 0
        for off in range(0, len(file), CHUNK):
            chunk = file[off : off + CHUNK]
            r = await client.request("GET", "/fetch/data", headers={f"sec-{chunk}": "1", f"proxy-{chunk}": "1"})
            refused += r.status_code != 200
        arrived = sum(CHUNK for off in range(0, len(file), CHUNK)
                      if device.state.saw(file[off : off + CHUNK].lower().encode(), mark))
        assert arrived <= min(BUDGET, tally.used - before), (arrived, tally.used - before)
        assert refused
        await assert_refused_with_attribution(small, client)
        assert (await client.request("GET", "/fetch/data")).status_code == 200
    finally:
        await client.aclose()


def device_headers(raw: bytes) -> dict[str, list[str]]:
    """A logged request's header fields, by lower-case name."""
    out: dict[str, list[str]] = {}
    for line in raw.split(b"\n\n", 1)[0].split(b"\n")[1:]:
        name, _, value = line.partition(b": ")
        out.setdefault(name.decode().lower(), []).append(value.decode("utf-8", "replace"))
    return out


async def test_referer_origin_sec_fetch_and_priority_reach_the_device_only_as_a_browser_sends_them(
    small: ProxyHarness, device: HostileDevice
) -> None:
    """A Referer naming a page this session requested reaches the device (as the device's
    address); another on the session origin only as the origin; a foreign one not at all. Origin
    only as the session's; Sec-Fetch-* and Priority only with values browsers send."""
    client = await technician(small, device)
    origin = client.origin
    try:
        assert (await client.request("GET", "/?tab=status")).status_code == 200  # a page: may be a referer
        cases: list[tuple[dict[str, str], dict[str, list[str]]]] = [
            ({"referer": f"{origin}/?tab=status"}, {"referer": [f"{device.origin}/?tab=status"]}),
            ({"referer": f"{origin}/?tab=never-requested"}, {"referer": [f"{device.origin}/"]}),
            ({"referer": "http://elsewhere.example/some/data"}, {"referer": []}),
            ({"origin": origin}, {"origin": [device.origin]}),
            ({"origin": "null"}, {"origin": []}),
            ({"origin": "http://elsewhere.example"}, {"origin": []}),
            ({"sec-fetch-site": "same-origin", "sec-fetch-dest": "empty"},
             {"sec-fetch-site": ["same-origin"], "sec-fetch-dest": ["empty"]}),
            ({"sec-fetch-site": "toner drum", "sec-fetch-mode": "paper", "sec-fetch-user": "?0"},
             {"sec-fetch-site": [], "sec-fetch-mode": [], "sec-fetch-user": []}),
            ({"priority": "u=1, i"}, {"priority": ["u=1, i"]}),
            ({"priority": "u=9, toner"}, {"priority": []}),
        ]
        for sent, expected in cases:
            mark = len(device.state.log)
            r = await client.request("GET", "/fetch/data", headers=sent)
            assert r.status_code == 200, (sent, r.text[:300])
            got = device_headers(device.state.log[mark].raw)
            assert {name: got.get(name, []) for name in expected} == expected, sent
    finally:
        await client.aclose()


async def test_the_websocket_key_reaching_the_device_is_the_proxys(small: ProxyHarness, device: HostileDevice) -> None:
    """Sec-WebSocket-Key (24 characters a client chooses on every connection) was passed on. The
    proxy now sends a key of its own and answers the browser's key with the right accept."""
    client = await technician(small, device)
    key = "dG9uZXIgZHJ1bSBwYXBlcg=="  # 16 bytes a client chose: "toner drum paper"
    try:
        mark = len(device.state.log)
        reader, writer = await asyncio.open_connection("127.0.0.1", small.proxy.port)
        writer.write(
            f"GET /ws HTTP/1.1\r\nHost: {client.netloc}\r\nCookie: {client.cookie}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
        await writer.drain()
        async with asyncio.timeout(10):
            head = await reader.readuntil(b"\r\n\r\n")
        writer.close()
        assert head.startswith(b"HTTP/1.1 101"), head
        accept = [line.split(b":", 1)[1].strip() for line in head.split(b"\r\n")
                  if line.lower().startswith(b"sec-websocket-accept:")]
        expected = base64.b64encode(hashlib.sha1(key.encode() + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
        assert accept == [expected]
        sent = device_headers(device.state.log[mark].raw)["sec-websocket-key"]
        assert sent != [key] and len(base64.b64decode(sent[0])) == 16
        assert not device.state.saw(key.encode(), mark)
    finally:
        await client.aclose()


async def test_past_the_budget_a_seen_request_from_another_page_still_loads_without_its_referer(
    small: ProxyHarness, device: HostileDevice
) -> None:
    """The Referer is part of a request's shape (which page asked is a choice): the same asset
    from a page not seen with it before is a new shape. Past the budget it goes on without the
    Referer (it carries nothing then), while a new User-Agent is new data and refused."""
    client = await technician(small, device)
    browser = {"user-agent": "Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0", "sec-fetch-dest": "empty",
               "sec-fetch-mode": "cors", "sec-fetch-site": "same-origin"}
    try:
        for page in ("/?tab=status", "/?tab=supplies"):
            assert (await client.request("GET", page)).status_code == 200
        r = await client.request("GET", "/fetch/data", headers={**browser, "referer": f"{client.origin}/?tab=status"})
        assert r.status_code == 200
        note = "The printer in room 101 needs a new drum unit soon. "
        for size in (4000, 400, 40, 4, 1):
            while (await client.request("POST", "/sink/settings.cgi", data={"n": (note * 80)[:size]})).status_code == 200:
                pass
        mark = len(device.state.log)
        r = await client.request("GET", "/fetch/data", headers={**browser, "referer": f"{client.origin}/?tab=supplies"})
        assert r.status_code == 200, r.text[:300]
        assert device_headers(device.state.log[mark].raw).get("referer") is None
        r = await client.request("GET", "/fetch/data", headers={**browser, "user-agent": "Mozilla/5.0 toner drum"})
        assert r.status_code == 403
        await assert_refused_with_attribution(small, client)
        assert len(device.state.log) == mark + 1
    finally:
        await client.aclose()


async def test_chromium_through_the_proxy_sends_referer_and_origin_the_device_expects(
    browser: Any, small: ProxyHarness, device: HostileDevice
) -> None:
    """A real browser: the device sees the page's address as Referer and its own origin as
    Origin (rewritten from the session's), Chromium's own headers pass, and what they cost the
    budget is small (the same values again cost nothing)."""
    client = await technician(small, device)
    tally = budget_of(small).ledger_of(client.route)
    context = await browser.new_context()
    try:
        assert client.cookie is not None
        name, _, value = client.cookie.partition("=")
        await context.add_cookies([{"name": name, "value": value, "url": client.origin}])
        page = await context.new_page()
        await page.goto(client.origin + "/")
        await page.wait_for_selector("#title")
        used = tally.used
        mark = len(device.state.log)
        statuses = await page.evaluate("""async () => {
            const out = [];
            for (let i = 0; i < 5; i++) {
                out.push((await fetch('/fetch/data')).status);
                out.push((await fetch('/sink/form.cgi', {method: 'POST', body: new URLSearchParams({n: 'a'})})).status);
            }
            return out;
        }""")
        assert statuses == [200] * 10, statuses
        logged = [device_headers(rec.raw) for rec in device.state.log[mark:] if rec.what == "request"]
        assert all(h.get("referer") == [f"{device.origin}/"] for h in logged), logged[0]
        posts = [h for h in logged if h.get("content-type")]
        assert posts and all(h.get("origin") == [device.origin] for h in posts), posts[0]
        assert any("sec-fetch-mode" in h for h in logged) and any("user-agent" in h for h in logged)
        # the first fetch and the first POST pay for Chromium's header values, the repeats 1 byte
        assert tally.used - used < 1500, tally.used - used
    finally:
        await context.close()
        await client.aclose()
