"""Round 6 (tester "xfer"): names, not only values, and the multipart preamble and epilogue.

The outside tester (/tmp/xfer: test_xfer_multipart.py, inproc_multipart.py, t_formkeys_demo.py,
t_querykeys_demo.py, t_querykeys_big.py, t_headernames.py) moved files to the device in what the
checks did not look at: raw deflate data or base64 before the first boundary or after the
closing boundary of a multipart form; base64 in a part's name or in an extra part header; binary
or base64 split over form field names, query keys, header names (values only were checked,
12 posts x 4,800 base64 characters as names passed while 800 as a value was refused); and a
repeated field name (``d=..&d=..``: only its first value was checked). Every case here passed
on the old code. Through the real proxy against the hostile device (which logs every byte it
receives) each is now refused, audited as ``dwa.transfer_blocked`` with the session's
attribution, nothing of it reaches the device, and the same session still serves pages. Names
sent in small pieces add up on the per-user encoded tally like values do. Ordinary forms,
queries, multipart forms and a browser's headers still pass.
"""

from __future__ import annotations

import base64
import random
import uuid
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import quote_from_bytes, urlencode

import httpx
import pytest

from tests.proxy.conftest import ProxyHarness, SessionClient
from tests.proxy.hostile_device import SECRET, HostileDevice
from tests.proxy.test_adversarial import open_route
from tests.proxy.test_r4_alphabets import (
    assert_one_attributed_refusal,
    refusals,
    still_serves_pages,
    technician,
)

# a raw deflate stream (no magic bytes, no header): binary a signature sniff cannot name
DEFLATE = zlib.compress(SECRET + SECRET[::-1], 9)[2:-4].replace(b"\x1b", b"")[:6000]
B64URL = base64.urlsafe_b64encode(random.Random(6).randbytes(3600)).decode().rstrip("=")  # 4,800 characters
B32 = base64.b32encode(random.Random(7).randbytes(1800)).decode().rstrip("=")  # 2,880 characters
# what one request may carry on the per-user encoded tally is 2,048 characters: the multipart
# cases carry less, so only the new per-request checks can refuse them
B64_SMALL = B64URL[:1500]
FORM = "application/x-www-form-urlencoded"

Send = Callable[[SessionClient], Awaitable[httpx.Response]]


@pytest.fixture(scope="module")
async def device() -> AsyncIterator[HostileDevice]:
    async with HostileDevice() as d:
        yield d


def chunks(s: str, size: int) -> list[str]:
    return [s[i : i + size] for i in range(0, len(s), size)]


def multipart_body(boundary: str, parts: list[tuple[str, str]], *, preamble: bytes = b"",
                   epilogue: bytes = b"\r\n", extra_headers: str = "") -> bytes:
    """A browser's multipart form (``name``, value) without files, with what comes before the
    first boundary and after the closing one."""
    body = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n{extra_headers}\r\n{value}\r\n'.encode()
        for name, value in parts
    )
    return preamble + body + f"--{boundary}--".encode() + epilogue


def multipart(body_of: Callable[[str], bytes]) -> Send:
    boundary = "----WebKitFormBoundary" + uuid.uuid4().hex[:16]
    body = body_of(boundary)

    async def send(c: SessionClient) -> httpx.Response:
        return await c.request("POST", "/sink", content=body,
                               headers={"content-type": f"multipart/form-data; boundary={boundary}"})
    return send


def form(body: str) -> Send:
    async def send(c: SessionClient) -> httpx.Response:
        return await c.request("POST", "/sink", content=body.encode(), headers={"content-type": FORM})
    return send


def get(path: str, headers: dict[str, str] | None = None) -> Send:
    async def send(c: SessionClient) -> httpx.Response:
        return await c.request("GET", path, headers=headers or {})
    return send


async def assert_refused(h: ProxyHarness, device: HostileDevice, send: Send, rule: str) -> dict[str, Any]:
    """``send`` through a fresh session: refused, nothing reached the device, one attributed
    ``dwa.transfer_blocked`` record with ``rule``, and the session still serves pages."""
    client = await technician(h, device)
    try:
        mark = len(device.state.log)
        r = await send(client)
        assert r.status_code == 403, (r.status_code, r.text[:300])
        assert device.state.log[mark:] == [], "the request reached the device"
        details = await assert_one_attributed_refusal(h, client, rule)
        await still_serves_pages(client)
        return details
    finally:
        await client.aclose()


# --- multipart: outside the parts, and the parts' own headers ----------------------------------

MULTIPART_ATTACKS: dict[str, tuple[Callable[[str], bytes], str]] = {
    # a file as bits of whitespace (tester xfer2): spaces and tabs, or a long run of line breaks
    "whitespace-bits-in-preamble": (
        lambda b: multipart_body(b, [("note", "hello")], preamble=bytes(b" \t"[byte % 2] for byte in SECRET[:64]) + b"\r\n"),
        "upload.multipart_outside_parts"),
    "whitespace-bits-in-epilogue": (
        lambda b: multipart_body(b, [("note", "hello")], epilogue=b"\r\n" + bytes(b"\r\n"[byte % 2] for byte in SECRET[:64])),
        "upload.multipart_outside_parts"),
    "whitespace-after-a-delimiter": (
        lambda b: multipart_body(b, [("note", "hello")]).replace(f"--{b}\r\n".encode(), f"--{b} \t \t\r\n".encode(), 1),
        "upload.multipart_outside_parts"),
    "deflate-in-preamble": (
        lambda b: multipart_body(b, [("note", "hello")], preamble=DEFLATE + b"\r\n"), "upload.multipart_outside_parts"),
    "deflate-in-epilogue": (
        lambda b: multipart_body(b, [("note", "hello")], epilogue=b"\r\n" + DEFLATE), "upload.multipart_outside_parts"),
    "base64-lines-in-epilogue": (
        lambda b: multipart_body(b, [("note", "hello")], epilogue=b"\r\n" + base64.encodebytes(SECRET[:1100])),
        "upload.multipart_outside_parts"),
    "base64-in-preamble": (
        lambda b: multipart_body(b, [("note", "hello")], preamble=B64_SMALL.encode() + b"\r\n"),
        "upload.multipart_outside_parts"),
    "base64-as-a-part-name": (lambda b: multipart_body(b, [(B64_SMALL, "1")]), "upload.encoded_blob"),
    "base64-split-over-part-names": (
        lambda b: multipart_body(b, [(piece, "1") for piece in chunks(B64_SMALL[:900], 60)]), "upload.encoded_blob"),
    "base64-in-an-extra-part-header": (
        lambda b: multipart_body(b, [("note", "hello")], extra_headers=f"X-Junk: {B64_SMALL}\r\n"),
        "upload.multipart_header"),
    "base64-in-a-part-type-parameter": (
        lambda b: multipart_body(b, [("note", "hello")], extra_headers=f"Content-Type: text/plain; x={B64_SMALL}\r\n"),
        "upload.encoded_blob"),
    "base64-transfer-encoded-part": (
        lambda b: multipart_body(b, [("note", base64.b64encode(b"hello " * 400).decode())],
                                 extra_headers="Content-Transfer-Encoding: base64\r\n"),
        "upload.multipart_header"),
}


@pytest.mark.parametrize("name", sorted(MULTIPART_ATTACKS))
async def test_multipart_data_outside_the_parts_or_in_their_headers_is_refused(harness, device, name):
    body_of, rule = MULTIPART_ATTACKS[name]
    await assert_refused(harness, device, multipart(body_of), rule)


# --- names: form fields, query keys, header names, cookie names --------------------------------

NAME_ATTACKS: dict[str, tuple[Send, str]] = {
    "form-binary-field-name": (form(quote_from_bytes(DEFLATE[:3000], safe=b"") + "=1"), "upload.binary_body"),
    "form-binary-split-over-names": (
        form("&".join(quote_from_bytes(DEFLATE[i : i + 30], safe=b"") + "=" for i in range(0, 3000, 30))),
        "upload.binary_body"),
    "form-base64-split-over-names": (form("&".join(p + "=" for p in chunks(B64URL, 60))), "upload.encoded_blob"),
    "form-base64-one-name": (form(B64URL + "=1"), "upload.encoded_blob"),
    "form-base64-over-one-repeated-name": (form("&".join("d=" + p for p in chunks(B64URL, 60))), "upload.encoded_blob"),
    "query-binary-key": (get("/sink?" + quote_from_bytes(DEFLATE[:2000], safe=b"")), "upload.query_binary"),
    "query-base64-split-over-keys": (get("/sink?" + "&".join(chunks(B64URL[:1200], 60))), "upload.query_encoded"),
    "header-names-base32": (get("/sink", {f"X-{p}": "1" for p in chunks(B32, 60)}), "upload.headers_encoded"),
    "cookie-names-base64": (get("/sink", {"cookie": "; ".join(p + "=1" for p in chunks(B64URL[:1800], 60))}),
                            "upload.cookies_encoded"),
}


@pytest.mark.parametrize("name", sorted(NAME_ATTACKS))
async def test_a_file_in_names_is_refused_like_one_in_values(harness, device, name):
    send, rule = NAME_ATTACKS[name]
    await assert_refused(harness, device, send, rule)


def trickle(where: str, piece: str, n: int) -> Send:
    """One request carrying ``piece`` (under every per-request threshold) in a name."""
    if where == "form":
        return form(f"{piece}=1")
    if where == "query":
        return get(f"/sink/{n}?{piece}")
    return get(f"/sink/{n}", {f"X-{piece}": "1"})


@pytest.mark.parametrize("where", ["form", "query", "header"])
async def test_names_sent_in_small_pieces_add_up_on_the_encoded_tally(harness, device, where):
    """150-200 base64 characters a request in one name pass every per-request check (a header
    name is judged together with the other new header names: 150 there); the per-user tally
    (2,048 characters) refuses the request that passes it, as it does for values."""
    size = 150 if where == "header" else 200
    pieces = chunks(base64.urlsafe_b64encode(random.Random(where).randbytes(3000)).decode().rstrip("="), size)[:16]
    client = await technician(harness, device)
    try:
        answers = []
        for n, piece in enumerate(pieces):
            mark = len(device.state.log)
            r = await trickle(where, piece, n)(client)
            answers.append(r.status_code)
            if r.status_code == 403:
                assert device.state.log[mark:] == []
                break
        assert answers[:9] == [200] * 9 and answers[-1] == 403 and len(answers) <= 2048 // size + 1, answers
        details = await assert_one_attributed_refusal(harness, client, "upload.session_encoded")
        assert "encoded-looking" in str(details["reason"])
        await still_serves_pages(client)
    finally:
        await client.aclose()


# --- what browsers and the lab printers' forms send still passes --------------------------------

CHROME_HEADERS = {
    "sec-ch-ua": '"Chromium";v="124", "Google Chrome";v="124", "Not-A.Brand";v="99"',
    "sec-ch-ua-mobile": "?0",
    "sec-ch-ua-platform": '"Windows"',
    "upgrade-insecure-requests": "1",
    "user-agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
                  "Chrome/124.0.0.0 Safari/537.36",
    "accept": "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8,"
              "application/signed-exchange;v=b3;q=0.7",
    "accept-language": "de-DE,de;q=0.9,en-US;q=0.8,en;q=0.7",
    "cache-control": "max-age=0",
    "x-requested-with": "XMLHttpRequest",
}

SETTINGS = [
    ("ctl00$MainContent$txtLocation", "Second floor, room 214"),
    ("ctl00$MainContent$txtContact", "Alice Example"),
    ("SysLocation", "Building B"), ("SysContactName", "IT helpdesk"),
    ("protocols", "ipp"), ("protocols", "lpd"), ("protocols", "raw9100"),
    ("snmpCommunityReadOnly", "public"), ("csrfToken", "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"),
    ("DNSServerAddress1", "192.168.10.1"), ("DNSServerAddress2", "192.168.10.2"),
    ("smtp.server.name", "mail.example.com"), ("énergie_mode", "éco"),
]


async def test_ordinary_forms_queries_multipart_and_browser_headers_reach_the_device(harness, device):
    client = await technician(harness, device)
    try:
        mark = len(device.state.log)
        r = await form(urlencode(SETTINGS))(client)
        assert (r.status_code, r.text) == (200, "accepted"), r.text[:300]
        r = await get("/sink/status?page=network&tab=tcpip&lang=de&_=1700000000000", CHROME_HEADERS)(client)
        assert r.status_code == 200, r.text[:300]
        r = await multipart(lambda b: multipart_body(b, SETTINGS[:6]))(client)
        assert (r.status_code, r.text) == (200, "accepted"), r.text[:300]
        r = await multipart(lambda b: multipart_body(b, [("note", "hello")], preamble=b"\r\n", epilogue=b"\r\n\r\n"))(
            client)
        assert (r.status_code, r.text) == (200, "accepted"), r.text[:300]
        r = await multipart(lambda b: multipart_body(b, [("note", "hello")], epilogue=b""))(client)
        assert (r.status_code, r.text) == (200, "accepted"), r.text[:300]
        assert device.state.saw(b"Second+floor", since=mark) and device.state.saw(b"Building B", since=mark)
        reached = b"".join(r.raw for r in device.state.log[mark:]).lower()
        assert b"tab=tcpip" in reached and b"sec-ch-ua-platform" in reached and b"snmpcommunityreadonly" in reached
        assert await refusals(harness, client) == []
    finally:
        await client.aclose()


@pytest.mark.browser
async def test_chromium_forms_urlencoded_and_multipart_reach_the_device(browser, harness, device):
    """What Chromium itself builds (a submitted multipart form, FormData and URLSearchParams
    bodies, its own headers) passes the stricter multipart and name checks."""
    route = open_route(harness, device)
    context = await browser.new_context()
    try:
        page = await context.new_page()
        await page.goto(harness.launch_url(route))
        await page.wait_for_selector("#title")
        mark = len(device.state.log)
        answers = await page.evaluate("""async () => {
            const fd = new FormData();
            for (const [k, v] of [["SysLocation", "Building B"], ["protocols", "ipp"], ["protocols", "lpd"],
                                  ["ctl00$MainContent$txtContact", "Alice Example"], ["énergie_mode", "éco"]])
                fd.append(k, v);
            const a = await fetch("/sink/formdata", {method: "POST", body: fd});
            const b = await fetch("/sink/params?page=network&tab=tcpip", {method: "POST",
                body: new URLSearchParams([["SysContactName", "IT helpdesk"], ["protocols", "raw9100"]])});
            return [a.status, await a.text(), b.status, await b.text()];
        }""")
        assert answers == [200, "accepted", 200, "accepted"], answers
        await page.evaluate("""() => {
            const f = document.createElement("form");
            f.method = "post"; f.enctype = "multipart/form-data"; f.action = "/sink/submitted";
            for (const [k, v] of [["SysLocation", "Second floor, room 214"], ["DNSServerAddress1", "192.168.10.1"]]) {
                const i = document.createElement("input"); i.name = k; i.value = v; f.appendChild(i);
            }
            document.body.appendChild(f); f.submit();
        }""")
        await page.wait_for_url("**/sink/submitted")
        assert "accepted" in await page.content()
        reached = b"".join(r.raw for r in device.state.log[mark:])
        assert b"Building B" in reached and b"raw9100" in reached and b"Second floor, room 214" in reached
        assert [e for e in await harness.events(route.session_id) if e.type == "dwa.transfer_blocked"] == []
    finally:
        await context.close()
