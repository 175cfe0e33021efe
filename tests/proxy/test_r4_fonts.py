"""Issue 21 round 4 F4: a "font" is a container of bytes, and the browser saved it.

The outside tester (a21r4, /tmp/a21r4/scale.py, br.py) served ``wOFF`` + a length field + 500 KiB
of random bytes as ``font/woff``, named by the device's CSS: the old code checked only the length
field and served it; ``Sec-Fetch-Dest: font`` (curl sets it) skipped the "named by the device's
CSS" rule; and Chromium, sent to the font's URL (typed, ``location.href``, a link), saved 512 KB
to disk (the CSP sandbox does not apply to a non-document). Now a font is parsed with fontTools
(tables known, every table decompiles, no byte outside the tables), it is never the answer to a
navigation, and in one proxy process only a font the device's CSS named is served. Real fonts
(the machine's TrueType/OpenType fonts, WOFF2 web fonts) still load, in Chromium too.
"""

from __future__ import annotations

import asyncio
import glob
import io
import random
import re
import struct
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from fontTools.ttLib import TTFont
from fontTools.ttLib.tables.DefaultTable import DefaultTable

from gateway.proxy import sniff
from gateway.proxy.font_check import font_problem
from tests.proxy.conftest import ProxyHarness
from tests.proxy.hostile_device import HostileDevice, sfnt
from tests.proxy.test_r4_alphabets import (
    assert_one_attributed_refusal,
    refusals,
    still_serves_pages,
    technician,
)

FILE = random.Random(4242).randbytes(500 * 1024)
REAL_TTF = sfnt()


def fake_woff(payload: bytes) -> bytes:
    """The tester's container: the WOFF signature, a flavor, the right total length, then anything."""
    return b"wOFF" + b"\x00\x01\x00\x00" + struct.pack(">I", 12 + len(payload)) + payload


def with_table(tag: str, data: bytes) -> bytes:
    font = TTFont(io.BytesIO(REAL_TTF))
    table = DefaultTable(tag)  # raw bytes, whatever the tag
    table.data = data
    font[tag] = table
    out = io.BytesIO()
    font.save(out)
    return out.getvalue()


def as_woff2(data: bytes) -> bytes:
    font = TTFont(io.BytesIO(data))
    font.flavor = "woff2"
    out = io.BytesIO()
    font.save(out)
    return out.getvalue()


def gap_before_last_table(data: bytes, gap: bytes) -> bytes:
    """Bytes slipped in before the last table, its directory offset moved past them (the length
    checks of the old code add up: the last table still ends the file)."""
    count = int.from_bytes(data[4:6], "big")
    records = [(i, *struct.unpack(">II", data[12 + 16 * i + 8 : 12 + 16 * i + 16])) for i in range(count)]
    last, offset, _length = max(records, key=lambda r: r[1])
    gap = gap[: (len(gap) // 4) * 4]
    out = bytearray(data[:offset] + gap + data[offset:])
    struct.pack_into(">I", out, 12 + 16 * last + 8, offset + len(gap))
    return bytes(out)


WEB_FONTS = sorted(glob.glob("/root/.rustup/toolchains/*/share/doc/rust/html/static.files/*.woff2"))
SYSTEM_FONTS = sorted(f for f in glob.glob("/usr/share/fonts/**/*", recursive=True)
                      if f.endswith((".ttf", ".otf", ".woff", ".woff2")))
REAL_WOFF2 = next((open(f, "rb").read() for f in WEB_FONTS if 20_000 < len(open(f, "rb").read()) < 120_000),
                  as_woff2(REAL_TTF))

FONTS: dict[str, tuple[bytes, str]] = {
    "container.woff": (fake_woff(FILE), "font/woff"),
    "private-table.ttf": (with_table("PRIV", FILE[:20_000]), "font/ttf"),
    "signature-blob.ttf": (with_table("DSIG", FILE[:20_000]), "font/ttf"),
    "gap.ttf": (gap_before_last_table(REAL_TTF, FILE[:20_000]), "font/ttf"),
    "eot.eot": (struct.pack("<I", 120) + b"\x00" * 30 + b"LP" + FILE[:84], "application/vnd.ms-fontobject"),
    "real.ttf": (REAL_TTF, "font/ttf"),
    "real.woff2": (REAL_WOFF2, "font/woff2"),
    "unnamed.ttf": (REAL_TTF, "font/ttf"),
}
NAMED = ["container.woff", "private-table.ttf", "signature-blob.ttf", "gap.ttf", "eot.eot", "real.ttf",
         "real.woff2"]
CSS = "".join(f"@font-face{{font-family:f{i};src:url(/f/{name})}}" for i, name in enumerate(NAMED)) + \
    "body{font-family:f5}"
PAGES = {
    "home": "<link rel=stylesheet href='/f/site.css'><p id=title>fonts</p><p style='font-family:f5'>A</p>",
    "location": "<link rel=stylesheet href='/f/site.css'><p id=title>x</p>"
                "<script>setTimeout(()=>location.href='/f/real.ttf',300)</script>",
    "link": "<link rel=stylesheet href='/f/site.css'><p id=title>x</p><a id=a href='/f/real.ttf'>font</a>",
    "iframe": "<link rel=stylesheet href='/f/site.css'><p id=title>x</p><iframe src='/f/real.woff2'></iframe>",
}


async def font(request: web.Request) -> web.Response:
    body, ctype = FONTS[request.match_info["name"]]
    return web.Response(body=body, headers={"content-type": ctype})


async def css(request: web.Request) -> web.Response:
    return web.Response(text=CSS, content_type="text/css")


async def html(request: web.Request) -> web.Response:
    return web.Response(text="<!doctype html><html><body>" + PAGES[request.match_info["name"]] + "</body></html>",
                        content_type="text/html")


class FontDevice(HostileDevice):
    def routes(self, app: web.Application) -> None:
        app.router.add_get("/f/site.css", css)
        app.router.add_get("/f/{name}", font)
        app.router.add_get("/p/{name}", html)


@pytest.fixture(scope="module")
async def device() -> AsyncIterator[FontDevice]:
    async with FontDevice() as d:
        yield d


FONT_FETCH = {"sec-fetch-dest": "font", "sec-fetch-mode": "cors", "sec-fetch-site": "same-origin"}


@pytest.mark.parametrize(("name", "rule"), [
    ("container.woff", "download.not_a_font"),
    ("private-table.ttf", "download.not_a_font"),
    ("signature-blob.ttf", "download.not_a_font"),
    ("gap.ttf", "download.not_a_font"),
    ("eot.eot", "download.not_a_font"),
])
async def test_a_container_named_by_the_css_is_refused(harness: ProxyHarness, device: FontDevice,
                                                       name: str, rule: str) -> None:
    client = await technician(harness, device)
    try:
        assert (await client.request("GET", "/f/site.css")).status_code == 200  # the CSS names it
        r = await client.request("GET", f"/f/{name}", headers=FONT_FETCH)
        assert r.status_code == 403, (r.status_code, r.text[:200])
        body = FONTS[name][0]
        assert body[len(body) // 2 : len(body) // 2 + 64] not in r.content
        await assert_one_attributed_refusal(harness, client, rule)
        await still_serves_pages(client)
    finally:
        await client.aclose()


async def test_real_fonts_the_css_names_are_served(harness: ProxyHarness, device: FontDevice) -> None:
    client = await technician(harness, device)
    try:
        assert (await client.request("GET", "/f/site.css")).status_code == 200
        for name in ("real.ttf", "real.woff2"):
            r = await client.request("GET", f"/f/{name}", headers=FONT_FETCH)
            assert r.status_code == 200 and r.content == FONTS[name][0], (name, r.status_code, r.text[:200])
        assert not await refusals(harness, client)
    finally:
        await client.aclose()


async def test_sec_fetch_dest_font_alone_does_not_serve_an_unnamed_font(harness: ProxyHarness,
                                                                        device: FontDevice) -> None:
    client = await technician(harness, device)
    try:
        assert (await client.request("GET", "/f/site.css")).status_code == 200
        r = await client.request("GET", "/f/unnamed.ttf", headers=FONT_FETCH)
        assert r.status_code == 403
        await assert_one_attributed_refusal(harness, client, "download.font_not_referenced")
        await still_serves_pages(client)
    finally:
        await client.aclose()


@pytest.mark.parametrize("headers", [
    {"sec-fetch-dest": "document", "sec-fetch-mode": "navigate", "sec-fetch-user": "?1"},
    {"sec-fetch-dest": "iframe", "sec-fetch-mode": "navigate"},
    {"sec-fetch-dest": "font", "sec-fetch-mode": "navigate"},  # a lie in one of them is enough
], ids=["typed", "iframe", "dest-font-but-navigate"])
async def test_a_font_is_never_the_answer_to_a_navigation(harness: ProxyHarness, device: FontDevice,
                                                           headers: dict[str, str]) -> None:
    client = await technician(harness, device)
    try:
        assert (await client.request("GET", "/f/site.css")).status_code == 200
        r = await client.request("GET", "/f/real.ttf", headers=headers)
        assert r.status_code == 403 and r.content != REAL_TTF
        await assert_one_attributed_refusal(harness, client, "download.font_navigation")
        await still_serves_pages(client)
    finally:
        await client.aclose()


def test_the_machines_real_fonts_parse_as_fonts() -> None:
    """False positives: every TrueType/OpenType/WOFF/WOFF2 font on this machine under the font size
    limit passes, but the few signed ones (a DSIG table holding a signature: not a web font's)."""
    checked = refused = 0
    for path in SYSTEM_FONTS + WEB_FONTS:
        data = open(path, "rb").read()
        if len(data) > 512 * 1024:
            continue
        kind = sniff.clean_font_kind(data)
        assert kind is not None, path
        problem = font_problem(data, kind)
        checked += 1
        if problem is not None:
            assert "DSIG" in problem, (path, problem)
            refused += 1
    assert checked >= 20 and refused <= checked // 20, (checked, refused)


@pytest.mark.browser
async def test_chromium_saves_no_font_it_is_sent_to_and_still_renders_named_fonts(
        browser: Any, harness: ProxyHarness, device: FontDevice) -> None:
    client = await technician(harness, device)
    context = await browser.new_context(accept_downloads=True)
    try:
        downloads: list[Any] = []
        context.on("page", lambda p: p.on("download", lambda d: downloads.append(d)))
        page = await context.new_page()
        page.on("download", lambda d: downloads.append(d))
        await page.goto(harness.launch_url(client.route))
        await page.wait_for_url(re.compile(r".*/$"))
        origin = harness.proxy.session_origin(client.route.session_id)
        await page.goto(origin + "/p/home")
        await page.wait_for_selector("#title")
        status = await page.evaluate("document.fonts.load('16px f5').then(f => f.length, () => -1)")
        assert status == 1  # the named real font loaded (Chromium parsed it)
        for path in ("/p/location", "/p/iframe"):
            await page.goto(origin + path)
            await asyncio.sleep(1.5)
        await page.goto(origin + "/p/link")
        await page.click("#a")
        await asyncio.sleep(1.0)
        response = await page.goto(origin + "/f/real.ttf")  # the technician types the URL
        assert response is not None and response.status == 403
        await asyncio.sleep(1.0)
        assert downloads == [], [d.url for d in downloads]
        blocked = {e.details.get("path") for e in await refusals(harness, client)
                   if e.details.get("rule") == "download.font_navigation"}
        assert blocked == {"/f/real.ttf", "/f/real.woff2"}, blocked
    finally:
        await context.close()
        await client.aclose()


def test_with_workers_the_font_loader_is_believed_only_for_a_parsed_font_and_never_for_a_navigation() -> None:
    """Proxy workers: the CSS naming a font may have gone through another process, so there a
    font request from the browser's font loader (dest font, mode cors) is served unnamed; a
    navigation never is, and one process alone believes no header."""
    from mitmproxy import http

    from gateway.proxy.addons.block_downloads import BlockDownloads
    from gateway.proxy.limits import ProxyLimits

    resp = http.Response.make(200, REAL_TTF, {"content-type": "font/ttf"})

    def verdict(trust: bool, headers: dict[str, str], structure: object = None) -> Any:
        req = http.Request.make("GET", "http://dev.test/f/unnamed.ttf",
                                headers=http.Headers([(k.encode(), v.encode()) for k, v in headers.items()]))
        return BlockDownloads(ProxyLimits(), trust_font_dest=trust).check(
            req, resp, session_id="s1", font_structure=structure)

    assert verdict(True, FONT_FETCH) is None
    assert verdict(False, FONT_FETCH)[0] == "download.font_not_referenced"
    assert verdict(True, {"sec-fetch-dest": "font"})[0] == "download.font_not_referenced"
    assert verdict(True, {"sec-fetch-dest": "font", "sec-fetch-mode": "navigate"})[0] == "download.font_navigation"
    refused = ("download.not_a_font", "a font that does not parse", len(REAL_TTF))
    assert verdict(True, FONT_FETCH, refused) == refused  # what parsing found is never skipped
