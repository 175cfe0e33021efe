"""Issue 21 round 4 F5/F6 (budgets): which already-sent values a request carries is data too.

Through a real DwaProxy against the hostile device (which logs every request reaching it), on a
proxy with a small session budget: a file sent as the choice among header values already sent
(24 names x 16 values, /tmp/a21r4/seen.py) or as the presence of headers already sent (48
``x-bN: 1``, /tmp/a21r4/bits.py) costs at least as many budget bytes as the file bytes the
device receives, and is refused past the budget (audited with attribution) while the same
session still loads its pages; past the budget a script's repeats cannot starve the
technician's own navigation (F6); the device's cookie stays free after more than 512 other
values (a bounded LRU, not a set cleared at once).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import pytest

from printgate.testing.audit import ReadableAuditLog
from tests.proxy.budget_harness import budget_of, budget_proxy
from tests.proxy.budget_harness import technician as new_technician
from tests.proxy.conftest import ProxyHarness, SessionClient
from tests.proxy.hostile_device import DEVICE_TOKEN, HostileDevice

BUDGET = 8192
HEX = "0123456789abcdef"


@pytest.fixture(scope="module")
async def small(audit_db: ReadableAuditLog) -> AsyncIterator[ProxyHarness]:
    """A proxy whose session budget is 8 KiB (the attacks run out of it in seconds)."""
    async with budget_proxy(audit_db, BUDGET) as h:
        yield h


@pytest.fixture(scope="module")
async def device() -> AsyncIterator[HostileDevice]:
    async with HostileDevice() as d:
        yield d


async def technician(h: ProxyHarness, device: HostileDevice) -> SessionClient:
    return await new_technician(h, device, "r4")


def headers_of(raw: bytes, prefix: bytes) -> dict[bytes, bytes]:
    head = raw.split(b"\n\n", 1)[0]
    out = {}
    for line in head.split(b"\n")[1:]:
        name, _, value = line.partition(b": ")
        if name.lower().startswith(prefix):
            out[name.lower()[len(prefix):]] = value
    return out


async def assert_refused_with_attribution(h: ProxyHarness, client: SessionClient) -> None:
    events = await h.events(client.route.session_id)
    blocked = [e for e in events if e.type == "dwa.transfer_blocked" and e.details.get("rule") == "budget.session"]
    assert blocked, sorted({e.type for e in events})
    found = blocked[-1]
    route = client.route
    expected = {"dealer_id": route.dealer_id, "customer_id": route.customer_id, "site_id": route.site_id,
                "device_id": route.device_id, "user_id": route.user_id, "session_id": route.session_id}
    got = {k: getattr(found, k, None) or found.details.get(k) for k in expected}
    assert got == expected, (got, found)


async def test_a_file_as_the_choice_among_seen_header_values_costs_what_it_moves(
    small: ProxyHarness, device: HostileDevice
):
    """24 header names, each primed with the 16 hex digits: every request then carries 12 bytes
    of a file as which seen value each name has. On the old code a request cost 1 byte (12,000
    bytes for 3,554 budget bytes); now the budget pays at least the bytes the device rebuilds,
    and the file is refused past the budget (audited), the session still loads its pages."""
    names = [f"x-k{i}" for i in range(24)]
    file = random.Random(5).randbytes(6000)
    client = await technician(small, device)
    tally = budget_of(small).ledger_of(client.route)
    try:
        for digit in HEX:
            r = await client.request("GET", "/fetch/data", headers={n: digit for n in names})
            assert r.status_code == 200, r.text[:300]
        for path in ("/", "/fetch/data"):  # the technician's pages
            assert (await client.request("GET", path)).status_code == 200
        primed = tally.used
        mark = len(device.state.log)
        refused = None
        for off in range(0, len(file), 12):
            digits = file[off : off + 12].hex()
            r = await client.request("GET", "/fetch/data", headers={n: digits[i] for i, n in enumerate(names)})
            if r.status_code != 200:
                refused = r
                break
        rebuilt = bytearray()
        for rec in device.state.log[mark:]:
            found = headers_of(rec.raw, b"x-k")
            if len(found) == 24:
                rebuilt += bytes.fromhex(b"".join(found[str(i).encode()] for i in range(24)).decode())
        assert refused is not None and refused.status_code == 403, "the whole file went through"
        assert bytes(rebuilt) == file[: len(rebuilt)]
        assert 0 < len(rebuilt) <= tally.used - primed, (len(rebuilt), tally.used - primed)
        assert len(rebuilt) < len(file)
        await assert_refused_with_attribution(small, client)
        # the pages seen before still load (fewer than SHAPE_CAP shapes were sent since)
        assert len(device.state.log) - mark < 250
        for path in ("/", "/fetch/data"):
            r = await client.request("GET", path)
            assert r.status_code == 200, r.text[-1500:]
    finally:
        await client.aclose()


def presence(chunk: bytes, bits: int) -> dict[str, str]:
    value = int.from_bytes(chunk.ljust(bits // 8, b"\0"), "big")
    return {f"x-b{i}": "1" for i in range(bits) if value >> (bits - 1 - i) & 1}


async def test_a_file_as_presence_bits_of_seen_headers_costs_what_it_moves_and_stops_past_the_budget(
    small: ProxyHarness, device: HostileDevice
):
    """48 headers ``x-bN: 1`` each sent once; then each request's subset says 6 bytes. On the old
    code each cost 1 byte, and past the budget such requests still went on at 1/s; now each
    costs at least the 6 bytes, and past the budget a new subset is refused."""
    nb = 48
    file = random.Random(21).randbytes(6 * 600)
    client = await technician(small, device)
    tally = budget_of(small).ledger_of(client.route)
    try:
        r = await client.request("GET", "/fetch/data", headers={f"x-b{i}": "1" for i in range(nb)})
        assert r.status_code == 200, r.text[:300]
        primed = tally.used
        mark = len(device.state.log)
        sent = 0
        for off in range(0, len(file), 6):
            r = await client.request("GET", "/fetch/data", headers=presence(file[off : off + 6], nb))
            if r.status_code != 200:
                break
            sent += 1
        assert r.status_code == 403 and sent < 600, sent
        delivered = 6 * sum(1 for rec in device.state.log[mark:] if rec.raw.startswith(b"GET /fetch/data"))
        assert 0 < delivered <= tally.used - primed, (delivered, tally.used - primed)
        await assert_refused_with_attribution(small, client)
        # past the budget: new subsets are refused, however slowly sent, and never reach the device
        mark = len(device.state.log)
        statuses = []
        for off in range(6 * sent + 6, 6 * sent + 6 * 8, 6):
            statuses.append((await client.request("GET", "/fetch/data", headers=presence(file[off : off + 6], nb))).status_code)
            await asyncio.sleep(0.3)
        assert statuses == [403] * len(statuses)
        assert len(device.state.log) == mark
        assert (await client.request("GET", "/fetch/data")).status_code == 200  # the plain page still loads
    finally:
        await client.aclose()


NAVIGATE = {"sec-fetch-mode": "navigate", "sec-fetch-dest": "document", "sec-fetch-site": "same-origin",
            "accept": "text/html,application/xhtml+xml"}


async def exhaust(client: SessionClient) -> None:
    note = "The printer in room 101 needs a new drum unit soon. "
    for size in (4000, 400, 40, 4, 1):
        while (await client.request("POST", "/sink/settings.cgi", data={"n": (note * 80)[:size]})).status_code == 200:
            pass


async def test_past_the_budget_a_scripts_repeats_do_not_starve_the_technicians_navigation(
    small: ProxyHarness, device: HostileDevice
):
    """F6: once the budget is spent a script repeating seen requests used up the one-a-second
    turns and the technician's own ``GET /`` got 403. Navigations have a bucket of their own;
    a reload (cache headers the page never sent) still loads, without those headers."""
    client = await technician(small, device)
    try:
        assert (await client.request("GET", "/", headers=NAVIGATE)).status_code == 200
        assert (await client.request("GET", "/fetch/data")).status_code == 200
        await exhaust(client)
        # the script: seen XHRs as fast as it can (more than the turns of the next 5 s) ...
        script = [asyncio.create_task(client.request("GET", "/fetch/data")) for _ in range(120)]
        await asyncio.sleep(1.0)
        # ... and meanwhile the technician clicks the device's home page
        r = await client.request("GET", "/", headers=NAVIGATE)
        assert r.status_code == 200, r.text[:300]
        codes = [r.status_code for r in await asyncio.gather(*script)]
        assert 403 in codes and codes.count(200) < 90, codes  # the script got its turns (60 + ~1/s), no more
        mark = len(device.state.log)
        reload = {**NAVIGATE, "cache-control": "max-age=0", "if-none-match": '"never-sent-before"'}
        r = await client.request("GET", "/", headers=reload)
        assert r.status_code == 200, r.text[:300]
        assert len(device.state.log) == mark + 1
        assert b"never-sent-before" not in device.state.log[-1].raw
        # new data still does not pass, navigation or not
        r = await client.request("GET", "/", headers={**NAVIGATE, "x-note": "hello"})
        assert r.status_code == 403
        await assert_refused_with_attribution(small, client)
    finally:
        await client.aclose()


async def test_the_devices_cookie_stays_free_after_more_than_512_other_values(
    small: ProxyHarness, device: HostileDevice
):
    """The remembered values were a set cleared at once past 512: the device's long token then
    looked new (checked as an encoded cookie and refused). Now the least recently used go first
    and the token, sent with every request, stays."""
    client = await technician(small, device)
    try:
        r = await client.request("GET", "/signin")
        token = r.headers["set-cookie"].split(";", 1)[0]
        assert DEVICE_TOKEN in token
        for i in range(60):  # 600 distinct short values (about 6 KB, within the 8 KiB budget)
            r = await client.request("GET", "/fetch/data", headers={
                "cookie": token, **{f"x-v{j}": f"{i}" for j in range(10)}})
            assert r.status_code == 200, (i, r.text[:300])
        r = await client.request("GET", "/fetch/data", headers={"cookie": token})
        assert r.status_code == 200, r.text[:300]
    finally:
        await client.aclose()
