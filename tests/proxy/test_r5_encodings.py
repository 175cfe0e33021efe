"""Issue 21 round 5: filler letters in base64/hex (F1), a file over many responses' headers (F3),
the header count at its edge (N1) and the decimal point in query numbers (N2).

The outside tester (a21r5, /tmp/a21r5/dlskew.py, dlmax.py, ul5.py, hdr5.py) carried an 800 KB
file in one page as base64 with ``e`` after every character (or `` e`` after every second), 40 KB
to the device in 10.7 KB JSON posts the same way, and 200 KB over ~150 responses' ``X-Diag-<n>``
headers each under every per-response cap. The filler lowered the window's entropy and put one
symbol far above the mean, so no check judged it. Each case here passed on the old code; through
the real proxy against the hostile device each is now refused, audited as
``dwa.transfer_blocked`` with the session's attribution, the payload absent from what the
browser (or device) got, and the same session still serves pages.
"""

from __future__ import annotations

import base64
import json
import random
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from gateway.proxy import encoded
from gateway.proxy.addons.security_headers import REMOVE
from gateway.proxy.budgets import number_cost
from gateway.proxy.response_headers import HEADER_DATA_ALLOWANCE, HeaderTally
from lab.ews import EwsLab
from tests.proxy.conftest import ProxyHarness
from tests.proxy.hostile_device import HostileDevice
from tests.proxy.test_r4_alphabets import (
    assert_one_attributed_refusal,
    refusals,
    still_serves_pages,
    technician,
)

HTML = "text/html; charset=utf-8"
FILE = random.Random(5).randbytes(40 * 1024)
B64 = base64.b64encode(FILE).decode()
G_V = FILE.hex().translate(str.maketrans("0123456789abcdef", "ghijklmnopqrstuv"))


def filled(s: str, filler: str, every: int = 1) -> str:
    """``filler`` after every ``every`` characters of ``s`` (a21r5's ``skew``)."""
    return "".join(c + (filler if i % every == every - 1 else "") for i, c in enumerate(s))


def page(text: str) -> str:
    return f"<!doctype html><html><head><meta charset=utf-8><title>Report</title></head><body><p>{text}</p></body></html>"


PAGES = {
    "b64-e-after-every-character": filled(B64, "e"),
    "b64-space-e-after-every-second": filled(B64, " e", 2),
    "b64-x-after-every-third": filled(B64, "x", 3),
    "b64-two-fillers": filled(filled(B64, "e"), "q", 3),
    "g-v-hex-e-after-every-second": filled(G_V, "e", 2),
}


async def filler_page(request: web.Request) -> web.Response:
    return web.Response(body=page(PAGES[request.match_info["name"]]).encode(), headers={"content-type": HTML})


def skewed_hex(data: bytes) -> str:
    """a21r5 ``enc.skewed_hex``: hex over g..v with ``e`` after every second character."""
    return filled(data.hex().translate(str.maketrans("0123456789abcdef", "ghijklmnopqrstuv")), "e", 2)


def dec_frac(data: bytes) -> str:
    """a21r5 ``enc.dec_frac``: two bytes as a decimal fraction with six digits (chart data)."""
    return ",".join(f"{(int.from_bytes(data[i:i + 2], 'big') + 0.5) / 65536:.6f}" for i in range(0, len(data) - 1, 2))


HDR_FILE = random.Random(77).randbytes(60 * 1024)
HDR_CHUNK = 1300  # file bytes per response (a21r5 hdr5.py: ~3,900 header characters as skewed hex)
HDR_CHARS = len(dec_frac(HDR_FILE[:HDR_CHUNK]))  # ... 5,850 as decimal fractions


async def diag_status(request: web.Request) -> web.Response:
    i = int(request.match_info["i"])
    code = skewed_hex if request.query.get("code") == "skewhex" else dec_frac
    s = code(HDR_FILE[i * HDR_CHUNK : (i + 1) * HDR_CHUNK])
    resp = web.Response(text='{"state":"ready"}', content_type="application/json")
    for k in range(0, len(s), 1900):
        resp.headers[f"X-Diag-{k // 1900}"] = s[k : k + 1900]
    return resp


class FillerDevice(HostileDevice):
    def routes(self, app: web.Application) -> None:
        app.router.add_get("/filler/{name}", filler_page)
        app.router.add_get("/diag/{i}", diag_status)


@pytest.fixture(scope="module")
async def device() -> AsyncIterator[FillerDevice]:
    async with FillerDevice() as d:
        yield d


# --- F1: a filler letter in base64 / hex ---------------------------------------------------------

@pytest.mark.parametrize("name", sorted(PAGES))
async def test_a_page_of_base64_or_hex_with_a_filler_letter_is_refused(harness: ProxyHarness, device: FillerDevice,
                                                                       name: str) -> None:
    client = await technician(harness, device)
    try:
        r = await client.request("GET", f"/filler/{name}")
        assert r.status_code == 403, (r.status_code, r.text[:200])
        payload = PAGES[name]
        assert payload[len(payload) // 2 : len(payload) // 2 + 40] not in r.text
        details = await assert_one_attributed_refusal(harness, client, "download.")
        assert details["direction"] == "response"
        await still_serves_pages(client)
    finally:
        await client.http.aclose()


@pytest.mark.parametrize("filler", ["e", " e"])
async def test_a_json_upload_of_base64_with_a_filler_letter_is_refused(harness: ProxyHarness, device: FillerDevice,
                                                                       filler: str) -> None:
    """a21r5 ul5.py b64e: 4,000 file bytes per 10.7 KB JSON post reached the device 11 times."""
    client = await technician(harness, device)
    try:
        note = filled(base64.b64encode(FILE[:4000]).decode(), filler, 1 if filler == "e" else 2)
        mark = len(device.state.log)
        r = await client.request("POST", "/sink", content=json.dumps({"note": note}).encode(),
                                 headers={"content-type": "application/json"})
        assert r.status_code == 403, (r.status_code, r.text[:300])
        assert not device.state.saw(note[5000:5040].encode(), since=mark), "the payload reached the device"
        await assert_one_attributed_refusal(harness, client, "upload.")
        await still_serves_pages(client)
    finally:
        await client.http.aclose()


def test_filler_windows_count_their_data_and_plain_text_counts_nothing() -> None:
    for name, text in PAGES.items():
        assert encoded.any_alphabet(page(text).encode(), 4096) is not None, name
        # the per-user tally too: 6,000 characters hold 2,000-4,500 base64 characters' worth of data
        assert encoded.encoded_chars(page(text[:6000]).encode()) >= 1600, name
    prose = ("The printer in the hall on the second floor needs toner; please check tray 2 before "
             "the weekly report is printed. ") * 200
    ordinary = [
        prose, prose.replace(" ", ""),
        ",".join(str(i * 7 % 256) for i in range(3000)),  # a lookup table: commas at every third place
        "\n".join(f"  -{i % 9}      {4400 + i}k      {2100 + i}k        {1350 + i}k      {845160 - i}" for i in range(400)),
        "\\u0d4d\\u0d57\\u0d62\\u0d63-\\u0dca\\u0dcf\\u0dd2" * 300,  # a Unicode range table
        "".join(f'"{w}",\n      ' for w in ("export", "extends", "false", "finally", "for", "function", "if") * 200),
    ]
    for text in ordinary:
        assert encoded.alphabet_chars(text.encode()) < 64, text[:60]
        assert all(encoded.any_alphabet(text.encode(), 1024) is None for _ in range(5)), text[:60]


# --- F3: a file over many responses' headers -----------------------------------------------------

async def test_a_file_over_many_responses_headers_stops_at_the_session_tally(harness: ProxyHarness,
                                                                             device: FillerDevice) -> None:
    """Each response's ``X-Diag-<n>`` headers stay under every per-response cap (5,850 characters of
    decimal fractions: a code no check names); the session's tally of new header characters
    refuses the file after about ``HEADER_DATA_ALLOWANCE`` (the old code passed all of them)."""
    client = await technician(harness, device)
    try:
        passed = 0
        status = 200
        for i in range(len(HDR_FILE) // HDR_CHUNK):
            r = await client.request("GET", f"/diag/{i}")
            status = r.status_code
            if status != 200:
                assert "x-diag-0" not in r.headers
                break
            assert r.headers["x-diag-0"]  # passed on whole, under every per-response cap
            passed += 1
        assert status == 403, f"{passed} responses' headers passed"
        assert passed * (HDR_CHARS - 128) <= HEADER_DATA_ALLOWANCE < (passed + 1) * (HDR_CHARS - 128)
        details = await assert_one_attributed_refusal(harness, client, "download.header_tally")
        assert "session" in details["reason"]
        await still_serves_pages(client)  # a page with an ordinary Date and Content-Length passes
        r = await client.request("GET", "/")
        assert r.status_code == 200
    finally:
        await client.http.aclose()


async def test_skewed_hex_in_one_response_headers_is_refused_as_encoded(harness: ProxyHarness,
                                                                        device: FillerDevice) -> None:
    """a21r5 hdr5.py skewhex: ``g``-``v`` hex with ``e`` after every second character, 3,900 characters
    in one response's headers (F1's filler, judged without it)."""
    client = await technician(harness, device)
    try:
        r = await client.request("GET", "/diag/0?code=skewhex")
        assert r.status_code == 403 and "x-diag-0" not in r.headers
        await assert_one_attributed_refusal(harness, client, "download.header_encoded")
        await still_serves_pages(client)
    finally:
        await client.http.aclose()


def test_header_tally_counts_what_is_new_only() -> None:
    ignored = frozenset(name.encode() for name in REMOVE)
    tally = HeaderTally(allowance=4096)
    for second in range(5000):  # a day of polling: the Date, the length and the same ETag
        fields = [(b"Content-Type", b"application/json"), (b"Date", b"Sun, 06 Dec 2026 %02d:%02d:%02d GMT"
                   % (second // 3600, second // 60 % 60, second % 60)),
                  (b"Content-Length", b"%d" % (100 + second % 7)), (b"ETag", b'"5f3a9c1e2b7d4a60"')]
        assert tally.charge("s1", fields, ignored) is None
    assert tally.used("s1") == 0
    rng = random.Random(3)
    big = [(b"X-Data", rng.randbytes(600).hex().encode())]
    assert tally.charge("s1", big, ignored) is None
    assert tally.charge("s1", big, ignored) is None  # the same value again: nothing new
    assert tally.used("s1") == 1200 + 6 - 128
    refused = None
    for _ in range(5):
        refused = tally.charge("s1", [(b"X-Data", rng.randbytes(600).hex().encode())], ignored)
        if refused:
            break
    assert refused is not None and refused[0] == "download.header_tally"
    assert tally.used("s1") <= 4096
    assert tally.charge("s2", big, ignored) is None  # another session's tally is its own
    tally.forget("s1")
    assert tally.used("s1") == 0


async def test_the_lab_printers_headers_stay_far_under_the_session_tally(ews_lab: EwsLab, session_client,
                                                                         harness: ProxyHarness) -> None:
    assert ews_lab.servers
    for ews in ews_lab.servers.values():
        client = await session_client(ews)
        for _ in range(3):
            for path in ("/", "/status", "/style.css", "/logo.png", "/redirect", "/api/status", "/login"):
                r = await client.request("GET", path)
                assert r.status_code in (200, 302, 303, 401), (ews.state.device_name, path, r.status_code)
        assert await refusals(harness, client) == []


# --- N1 / N2 --------------------------------------------------------------------------------------

def test_a_header_name_does_not_lengthen_the_value_run() -> None:
    from gateway.proxy.response_headers import header_finding
    value = base64.b64encode(random.Random(1).randbytes(700)).decode()[:900].encode()
    fields = [(b"Content-Type", b"text/html"), (b"X-D", value)]
    assert header_finding(fields, frozenset()) is None  # 900 encoded characters: under the 1,024


def test_the_decimal_point_of_a_query_number_is_charged() -> None:
    now = 1_800_000_000.0
    assert number_cost(b"1.234567", now) > number_cost(b"1234567", now)
    assert number_cost(b"123456.7", now) == number_cost(b"1.234567", now)
    assert number_cost(b"1234567", now) == 3  # 7 digits: 23.3 bits
    assert number_cost(b"1.234567", now) == 4  # ... and the point's place among 8: 3 bits more
