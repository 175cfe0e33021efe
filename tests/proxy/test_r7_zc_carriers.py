"""Tester zc: three carriers the session budget did not charge (round 7).

F1: the proxy rewrote the values of ``Host``, ``Cookie``, ``Content-Length`` and
``Sec-WebSocket-Key`` (uncounted), but mitmproxy kept each field's name as sent (letter case)
and its position: 5 bytes a request reached the device for 1 budget byte, free past the budget.
F2: past the budget the proxy's clock went into each timestamp in the unit the client chose
(10 or 13 digits): one free bit a ``t=`` parameter. F3: past the budget each browser connection
had a device connection of its own: which one a repeat came on said log2(connections) bits.

Through a real DwaProxy (small session budget) against a device that logs request heads byte
for byte (``RawDevice``), from raw sockets (a script holding the session cookie).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator

import pytest

from printgate.testing.audit import ReadableAuditLog
from tests.proxy.budget_harness import budget_of, budget_proxy, technician
from tests.proxy.conftest import ProxyHarness, SessionClient
from tests.proxy.raw_device import RawDevice

BUDGET = 2000


class _Device:
    """``RawDevice`` as ``technician`` wants a device (host, port, origin)."""

    host = "127.0.0.1"

    def __init__(self, raw: RawDevice) -> None:
        self.raw = raw

    @property
    def port(self) -> int:
        return self.raw.port

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.raw.port}"


class _Conn:
    """One keep-alive raw connection to the proxy."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def send(self, data: bytes) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        self.writer.write(data)
        await self.writer.drain()
        async with asyncio.timeout(15):
            head = await self.reader.readuntil(b"\r\n\r\n")
            size = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    size = int(value)
                assert name.strip().lower() != b"transfer-encoding"  # the proxy answers with a length
            await self.reader.readexactly(size)
        return int(head.split(b" ")[1])

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


@pytest.fixture
async def proxy(audit_db: ReadableAuditLog) -> AsyncIterator[tuple[ProxyHarness, SessionClient, RawDevice]]:
    raw = RawDevice()
    await raw.start()
    try:
        async with budget_proxy(audit_db, BUDGET) as h:
            client = await technician(h, _Device(raw), "zc")  # type: ignore[arg-type]
            try:
                yield h, client, raw
            finally:
                await client.aclose()
    finally:
        await raw.aclose()


def _get(client: SessionClient, target: str, *lines: str) -> bytes:
    fields = [f"Host: {client.netloc}", f"Cookie: {client.cookie}", *lines]
    return (f"GET {target} HTTP/1.1\r\n" + "\r\n".join(fields) + "\r\n\r\n").encode()


async def _spend(h: ProxyHarness, client: SessionClient, conn: _Conn, seen: bytes) -> None:
    """Spend the whole session budget (new header values), then repeat ``seen`` until even a
    repeat's 1 byte is past it."""
    tally = budget_of(h).ledger_of(client.route)
    j = 0
    while await conn.send(_get(client, "/s", f"X-N: {'paper toner ' * 20}{j}")) == 200:
        j += 1
    while await conn.send(_get(client, "/s", f"X-N: {j}")) == 200:
        j += 1
    for _ in range(BUDGET - tally.used + 1):
        await conn.send(seen)
    assert tally.used == BUDGET or await conn.send(_get(client, "/s", "X-N: new")) != 200


async def test_name_case_and_position_of_the_proxy_set_fields_do_not_reach_the_device(
    proxy: tuple[ProxyHarness, SessionClient, RawDevice],
) -> None:
    """F1: the same request with Host/Cookie/Content-Length/Sec-WebSocket-Key (and the normalised
    Referer/Origin/Sec-Fetch-*) in any letter case and any place reaches the device as one and
    the same head: nothing of the sender's choice crosses. On the old code every variant reached
    the device as sent (23 case bits and 18 position bits a request)."""
    h, client, raw = proxy
    conn = _Conn(h.proxy.port)
    fixed = ["X-A: 1", "X-B: 2", "Accept: */*", "Sec-Fetch-Mode: cors"]
    variants = [
        [f"Host: {client.netloc}", *fixed, f"Cookie: {client.cookie}; d=1"],
        [f"hOsT: {client.netloc}", *fixed, f"cOOkie: {client.cookie}; d=1", "content-LENGTH: 0"],
        [*fixed[:2], f"HOST: {client.netloc}", f"COOKIE: {client.cookie}", *fixed[2:], "cookie: d=1"],
        [f"COOKIE: {client.cookie};d=1", fixed[0], "Content-Length: 0", fixed[1], f"host: {client.netloc}",
         *fixed[2:], "sec-websocket-KEY: dGhlIHNhbXBsZSBub25jZQ=="],
        [fixed[0], "SEC-WEBSOCKET-KEY: x", *fixed[1:3], "sec-FETCH-mode: cors", f"Host: {client.netloc}",
         f"Cookie: {client.cookie};  d=1;"],
    ]
    try:
        mark = len(raw.requests)
        for lines in variants:
            target = "/a"
            head = (f"GET {target} HTTP/1.1\r\n" + "\r\n".join(lines) + "\r\n\r\n").encode()
            assert await conn.send(head) == 200, lines
        heads = [s.head for s in raw.requests[mark:]]
        assert len(heads) == len(variants)
        assert len(set(heads)) == 1, heads
        head = heads[0]
        assert head.startswith(b"GET /a HTTP/1.1\r\nHost: 127.0.0.1:"), head
        assert b"\r\nCookie: d=1\r\n" in head, head
        assert b"ontent-" not in head.lower().replace(b"content-type", b"")
        assert b"websocket" not in head.lower()
        # a POST says its (empty) body's length, with the canonical name, after the other fields
        mark = len(raw.requests)
        for name in ("content-length", "CONTENT-length"):
            post = (f"POST /p HTTP/1.1\r\n{name}: 0\r\nHost: {client.netloc}\r\nCookie: {client.cookie}\r\n"
                    "X-A: 1\r\n\r\n").encode()
            assert await conn.send(post) == 200
        posts = [s.head for s in raw.requests[mark:]]
        assert len(set(posts)) == 1 and posts[0].endswith(b"X-A: 1\r\nContent-Length: 0\r\n\r\n"), posts
    finally:
        conn.close()


async def test_past_the_budget_a_timestamp_unit_is_a_new_shape(
    proxy: tuple[ProxyHarness, SessionClient, RawDevice],
) -> None:
    """F2: past the budget a seen shape's timestamps are the proxy's clock, and seconds and
    milliseconds are different shapes: a request that swaps units is refused, so the unit
    carries nothing. On the old code every mix of units passed (one free bit a parameter)."""
    h, client, raw = proxy
    conn = _Conn(h.proxy.port)
    n = 16

    def target(bits: list[int]) -> str:
        now = time.time()
        return "/a?" + "&".join(f"t={int(now * 1000) if b else int(now)}" for b in bits)

    try:
        seen = _get(client, target([0] * n))
        assert await conn.send(seen) == 200
        await _spend(h, client, conn, seen)
        mark = len(raw.requests)
        statuses = [await conn.send(_get(client, target([(i >> k) & 1 for k in range(n)]))) for i in range(1, 9)]
        assert await conn.send(_get(client, target([0] * n))) == 200  # the seen shape still loads
        units = [len(v) for s in raw.requests[mark:] for v in re.findall(rb"t=([0-9]+)", s.head.split(b"\r\n")[0])]
        assert set(units) == {10}, (statuses, units)
        assert all(st != 200 for st in statuses), statuses
    finally:
        conn.close()


async def test_past_the_budget_each_repeat_reaches_the_device_on_a_connection_of_its_own(
    proxy: tuple[ProxyHarness, SessionClient, RawDevice],
) -> None:
    """F3: past the budget a repeat goes to the device on a fresh connection (closed after its
    answer), so which browser connection it came on cannot be told there; the browser's own
    connection stays open. On the old code each browser connection kept one device connection
    (4 bits a request over 16 connections)."""
    h, client, raw = proxy
    conn = _Conn(h.proxy.port)
    seen = _get(client, "/a")
    conns = [_Conn(h.proxy.port) for _ in range(4)]
    try:
        assert await conn.send(seen) == 200
        await _spend(h, client, conn, seen)
        for c in conns:
            assert await c.send(seen) == 200
        before, mark = raw.connections, len(raw.requests)
        for i in range(12):
            assert await conns[i % 3].send(seen) == 200  # the same browser connections, kept open
        assert len(raw.requests) - mark == 12
        assert raw.connections - before == 12, raw.connections - before
    finally:
        for c in [conn, *conns]:
            c.close()
