"""Issue 21 round 4 F3: the device's response headers carried files past every body check.

The outside tester (a21r4, /tmp/a21r4/dl.py) had the hostile device put 64 KB of base64 into ten
``X-D<n>`` headers, 3,000 base64 characters into each of several ``Set-Cookie`` values, and a
``302`` to ``Location: data:application/octet-stream;base64,...``: all reached the browser (the
old code checked no response header). Each is now refused by the proxy (``download.header_*``),
audited with the session's attribution, the payload absent from what the browser got, and the
same session still serves pages. The lab printers' own cookies and headers still pass.
"""

from __future__ import annotations

import base64
import random
import re
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from gateway.proxy.addons.security_headers import REMOVE
from gateway.proxy.response_headers import header_finding
from lab.ews import EwsLab
from lab.ews.device_login import PASSWORD, SESSION_COOKIE, USERNAME
from tests.proxy.conftest import ProxyHarness, exchange, status_of
from tests.proxy.hostile_device import HostileDevice
from tests.proxy.test_r4_alphabets import (
    assert_one_attributed_refusal,
    still_serves_pages,
    technician,
)

FILE = random.Random(4242).randbytes(6 * 1024)
B64 = base64.b64encode(FILE).decode()


def _text(headers: dict[str, str] | list[tuple[str, str]], status: int = 200) -> web.Response:
    resp = web.Response(status=status, text="ok", content_type="text/plain")
    for name, value in (headers.items() if isinstance(headers, dict) else headers):
        resp.headers.add(name, value)
    return resp


def case(name: str) -> tuple[list[tuple[str, str]], int, str, str]:
    """(headers, status, expected rule, a piece of the payload that must not reach the browser)."""
    if name == "x-headers-64k":
        return [(f"X-D{i // 4000}", B64[i : i + 4000]) for i in range(0, len(B64), 4000)], 200, \
            "download.header_too_large", B64[5000:5040]
    if name == "x-headers-under-each-cap":  # 1,000 characters a header: only their sum is a file
        return [(f"X-D{i // 1000}", B64[i : i + 1000]) for i in range(0, 8000, 1000)], 200, \
            "download.header_", B64[3000:3040]
    if name == "cookies-3000":
        return [("Set-Cookie", f"d{i // 3000}={B64[i : i + 3000]}; Path=/") for i in range(0, len(B64), 3000)], 200, \
            "download.header_too_large", B64[1000:1040]
    if name == "cookies-900-each":  # each under the per-cookie allowance: their encoded sum is not
        return [("Set-Cookie", f"d{i // 900}={B64[i : i + 900]}; Path=/") for i in range(0, 4500, 900)], 200, \
            "download.header_encoded", B64[1000:1040]
    if name == "location-data":
        return [("Location", "data:application/octet-stream;base64," + B64)], 302, "download.header_", B64[3000:3040]
    if name == "location-data-short":
        return [("Location", "data:text/html;base64," + B64[:200])], 302, "download.header_url", B64[100:140]
    if name == "location-javascript":
        return [("Location", " Java\tScript:fetch('/x')")], 302, "download.header_url", "fetch('/x')"
    if name == "refresh-blob":
        return [("Refresh", "0; url=blob:http://x/1234")], 200, "download.header_url", "blob:http"
    if name == "hex-in-etag":
        return [("ETag", '"' + FILE[:1000].hex() + '"')], 200, "download.header_encoded", FILE[:1000].hex()[800:840]
    raise KeyError(name)


NAMES = ["x-headers-64k", "x-headers-under-each-cap", "cookies-3000", "cookies-900-each", "location-data",
         "location-data-short", "location-javascript", "refresh-blob", "hex-in-etag"]


async def header_case(request: web.Request) -> web.Response:
    headers, status, _, _ = case(request.match_info["name"])
    return _text(headers, status)


async def long_token_cookie(request: web.Request) -> web.Response:
    """What a newer EWS sets: a 43-character session id, a 600-character signed token (JWT-like)."""
    rng = random.Random(7)
    jwt = ".".join(base64.urlsafe_b64encode(rng.randbytes(n)).decode().rstrip("=") for n in (36, 330, 64))
    return _text([("Set-Cookie", "sid=" + base64.urlsafe_b64encode(rng.randbytes(32)).decode().rstrip("=")
                   + "; Path=/; HttpOnly"),
                  ("Set-Cookie", f"token={jwt}; Path=/; HttpOnly; SameSite=Strict"),
                  ("ETag", '"5f3a9c1e2b7d4a60"'), ("X-Frame-Options", "DENY"), ("Location", "/index.html")])


class HeaderDevice(HostileDevice):
    def routes(self, app: web.Application) -> None:
        app.router.add_get("/hdr/{name}", header_case)
        app.router.add_get("/token", long_token_cookie)


@pytest.fixture(scope="module")
async def device() -> AsyncIterator[HeaderDevice]:
    async with HeaderDevice() as d:
        yield d


@pytest.mark.parametrize("name", NAMES)
async def test_a_file_in_response_headers_is_refused(harness: ProxyHarness, device: HeaderDevice, name: str) -> None:
    client = await technician(harness, device)
    try:
        _, _, rule, piece = case(name)
        # raw: httpx would follow nothing, but it would fold repeated headers; the bytes are what matter
        raw = await exchange(harness.proxy.port,
                             f"GET /hdr/{name} HTTP/1.1\r\nHost: {client.netloc}\r\nCookie: {client.cookie}\r\n"
                             "Connection: close\r\n\r\n".encode(), wait_s=5)
        assert status_of(raw) == 403, raw[:400]
        assert piece.encode() not in raw
        head = raw.split(b"\r\n\r\n")[0].lower()
        assert b"\r\nset-cookie:" not in head and b"\r\nlocation:" not in head and b"\r\nx-d" not in head
        await assert_one_attributed_refusal(harness, client, rule)
        await still_serves_pages(client)
    finally:
        await client.aclose()


async def test_a_device_session_token_and_ordinary_headers_pass(harness: ProxyHarness, device: HeaderDevice) -> None:
    client = await technician(harness, device)
    try:
        r = await client.request("GET", "/token")
        assert r.status_code == 200, r.text[:300]
        assert {c.split("=", 1)[0] for c in r.headers.get_list("set-cookie")} == {"sid", "token"}
    finally:
        await client.aclose()


async def test_the_lab_printers_headers_hold_nothing_the_check_refuses(ews_lab: EwsLab, session_client) -> None:
    """Every lab EWS's pages pass the header check through the proxy, and a form sign-in's session
    cookie (``Set-Cookie: ewssid=<32 hex>``) reaches the browser."""
    assert ews_lab.servers
    signed_in = 0
    for ews in ews_lab.servers.values():
        client = await session_client(ews)
        for path in ("/", "/status", "/style.css", "/logo.png", "/redirect", "/api/status", "/login"):
            r = await client.request("GET", path)
            assert r.status_code in (200, 302, 303, 401), (ews.state.device_name, path, r.status_code, r.text[:200])
            assert "download.header" not in r.text, (ews.state.device_name, path)
        login = ews.state.auth.login
        if login.kind != "form":
            continue
        form = await client.request("GET", login.path)
        fields = dict(re.findall(r"<input type=hidden name=(\w+) value='([^']*)'>", form.text))
        fields |= {login.user_field: USERNAME, login.password_field: PASSWORD}
        r = await client.request("POST", login.path, data=fields)
        assert r.status_code == 302, (ews.state.device_name, r.status_code, r.text[:300])
        assert any(c.startswith(SESSION_COOKIE + "=") for c in r.headers.get_list("set-cookie")), r.headers
        signed_in += 1
    assert signed_in >= 1


def test_header_check_unit_cases() -> None:
    ignored = frozenset(name.encode() for name in REMOVE)
    assert header_finding([(b"Content-Type", b"text/html"), (b"Set-Cookie", b"ewssid=" + b"a1" * 16)], ignored) is None
    # what SecurityHeaders replaces is not passed on: never refused for it
    assert header_finding([(b"Content-Security-Policy", B64[:3000].encode())], ignored) is None
    assert header_finding([(b"Location", b"\x01 data:,x")], ignored)[0] == "download.header_url"  # type: ignore[index]
    assert header_finding([(b"Location", b"/data:here")], ignored) is None
    too_many = [(b"Set-Cookie", b"c%d=1" % i) for i in range(21)]
    assert header_finding(too_many, ignored)[0] == "download.header_too_large"  # type: ignore[index]
