"""Issue 21 round 4 F1/F2: files written in small or foreign alphabets, through the real proxy.

The outside tester (a21r4, /tmp/a21r4/dl.py, ul.py, ws.py) carried whole files in one page, one
JSON body or one WebSocket frame as hex over another 16-character alphabet (``ghijklmnopqrstuv``,
16 punctuation marks, 16 CJK or Cyrillic characters, 16 emoji), base32 over 32 Cyrillic letters,
bits as zero-width characters, JS octal escapes and a JSON list of 16-bit numbers: the
any-alphabet check wanted 24 or more distinct characters, hex was only ``[0-9a-f]``. Every case
here passed intact on the old code. Each is now refused by the proxy against the hostile device
(which logs every byte it receives), audited as ``dwa.transfer_blocked`` with the session's
attribution, the payload absent from what the device received or what the browser got, and the
same session still serves pages. Small uploads over an invisible alphabet add up on the
per-user tally. Pages in Japanese, Russian and German, and the lab printers' pages, still pass.
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import aiohttp
import httpx
import pytest
from aiohttp import WSMsgType, web

from gateway.proxy import encoded
from gateway.proxy.routes import SessionRoute
from lab.ews import EwsLab
from tests.proxy.conftest import ProxyHarness, SessionClient
from tests.proxy.hostile_device import STATE, HostileDevice, Reached

HEX = "0123456789abcdef"
B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
CJK16 = "的一是不了人我在有他这为之大来以"
CYR16 = "абвгдежзиклмнопр"
EMO16 = "😀😁😂😃😄😅😆😇😈😉😊😋😌😍😎😏"
LAT16 = "ghijklmnopqrstuv"
PUN16 = "!#$%&()*+,-.:;<="
CYR32 = "абвгдежзийклмнопрстуфхцчшщъыьэюя"
ATTRIBUTION = {"dealer_id": "dealer-f21c", "customer_id": "cust-f21c", "site_id": "site-f21c"}

DOWN = random.Random(4242).randbytes(6 * 1024)  # the file a page carries (6 KiB: over 3 KB of data)
UP = random.Random(99).randbytes(1500)  # the file a request carries (1.5 KB: over the 768 bytes allowed)


def hex_as(data: bytes, alphabet: str) -> str:
    return data.hex().translate(str.maketrans(HEX, alphabet))


def b32_as(data: bytes, alphabet: str) -> str:
    return base64.b32encode(data).decode().rstrip("=").translate(str.maketrans(B32, alphabet))


def zero_width(data: bytes) -> str:
    return "".join("\u200b" if (c >> i) & 1 else "\u200c" for c in data for i in range(8))


def octal(data: bytes) -> str:
    return "".join(f"\\{c:03o}" for c in data)


def u16(data: bytes) -> list[int]:
    return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]


def page(text: str) -> str:
    return f"<!doctype html><html><head><meta charset=utf-8></head><body><p>Status report</p><p>{text}</p></body></html>"


HTML = "text/html; charset=utf-8"
PAGES: dict[str, tuple[str, str, str]] = {  # name -> (body, content type, the payload inside it)
    "hex-as-g-v": (page(hex_as(DOWN, LAT16)), HTML, hex_as(DOWN, LAT16)),
    "hex-as-punctuation-js": ("var d=" + json.dumps(hex_as(DOWN, PUN16)) + ";", "application/javascript",
                              hex_as(DOWN, PUN16)),
    "hex-as-cjk": (page(hex_as(DOWN, CJK16)), HTML, hex_as(DOWN, CJK16)),
    "hex-as-cyrillic": (page(hex_as(DOWN, CYR16)), HTML, hex_as(DOWN, CYR16)),
    "hex-as-emoji": (page(hex_as(DOWN, EMO16)), HTML, hex_as(DOWN, EMO16)),
    "base32-as-cyrillic": (page(b32_as(DOWN, CYR32)), HTML, b32_as(DOWN, CYR32)),
    "zero-width-bits": (page("Hello" + zero_width(DOWN) + "world"), HTML, zero_width(DOWN)),
    "zero-width-between-letters": (page("".join(a + b for a, b in zip(
        "The printer is ready. " * 3000, zero_width(DOWN), strict=False))), HTML, zero_width(DOWN)[:8000:2]),
    "octal-escapes-js": ('var s="' + octal(DOWN) + '";', "application/javascript", octal(DOWN)),
    "u16-numbers-json": (json.dumps({"v": u16(DOWN)}), "application/json", json.dumps(u16(DOWN))[1:-1]),
}
FRAME_DOWN = random.Random(11).randbytes(30 * 1024)


async def alphabet_page(request: web.Request) -> web.Response:
    body, ctype, _ = PAGES[request.match_info["name"]]
    return web.Response(body=body.encode(), headers={"content-type": ctype})


LANGUAGE_PAGE = page(" ".join([
    "用紙サイズを選択してください。トナー残量が少なくなっています。給紙トレイ２に用紙がありません。",
    "Выберите формат бумаги. Тонер заканчивается, замените картридж. В лотке 2 нет бумаги.",  # noqa: RUF001
    "Papierformat auswählen. Der Toner ist fast leer, bitte die Kartusche ersetzen. Fach 2 ist leer.",
    "👍 Alles gut — ✔️ prêt, 準備完了 🖨️",
]) * 60)


async def language_page(request: web.Request) -> web.Response:
    return web.Response(body=LANGUAGE_PAGE.encode(), headers={"content-type": HTML})


async def alphabet_ws(request: web.Request) -> web.WebSocketResponse:
    sock = web.WebSocketResponse()
    await sock.prepare(request)
    await sock.send_str(json.dumps({"status": "ready", "seq": 1}))
    await sock.send_str(json.dumps({"v": hex_as(FRAME_DOWN, LAT16)}))  # a 30 KB file in one frame
    await sock.send_str(json.dumps({"v": hex_as(FRAME_DOWN[:8000], CJK16)}, ensure_ascii=False))
    await sock.send_str(json.dumps({"status": "ready", "seq": 2}))
    async for msg in sock:
        if msg.type == WSMsgType.TEXT:
            request.app[STATE].log.append(Reached("ws-text", msg.data.encode()))
            await sock.send_str(json.dumps({"echo": len(msg.data)}))
    return sock


class AlphabetDevice(HostileDevice):
    """The hostile device with the round-4 pages and WebSocket."""

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/alpha/{name}", alphabet_page)
        app.router.add_get("/languages", language_page)
        app.router.add_get("/ws-alpha", alphabet_ws)


@pytest.fixture(scope="module")
async def device() -> AsyncIterator[AlphabetDevice]:
    async with AlphabetDevice() as d:
        yield d


async def technician(h: ProxyHarness, device: HostileDevice) -> SessionClient:
    """A fresh attributed session (its own user: each case starts with an empty tally)."""
    sid = uuid.uuid4().hex[:12]
    route = SessionRoute(
        session_id=sid, host=h.proxy.session_host(sid), upstream_host=device.host, upstream_port=device.port,
        device_origin=device.origin, device_scheme="http", pinned_fingerprint=None,
        expires_at=datetime.now(UTC) + timedelta(minutes=30), idle_timeout_s=600, device_label="Hostile",
        customer_name="ACME", user_id=f"user-{sid}", device_id=f"dev-{sid}", dealer_id=ATTRIBUTION["dealer_id"],
        customer_id=ATTRIBUTION["customer_id"], site_id=ATTRIBUTION["site_id"],
    )
    h.routes.add(route)
    client = SessionClient(h, route)
    await client.launch()
    return client


async def refusals(h: ProxyHarness, client: SessionClient) -> list[Any]:
    return [e for e in await h.events(client.route.session_id) if e.type == "dwa.transfer_blocked"]


async def assert_one_attributed_refusal(h: ProxyHarness, client: SessionClient, rule_prefix: str) -> dict[str, Any]:
    blocked: list[Any] = []
    for _ in range(50):
        blocked = await refusals(h, client)
        if blocked:
            break
        await asyncio.sleep(0.1)
    assert len(blocked) == 1, [(e.type, e.details) for e in blocked]
    event = blocked[0]
    assert str(event.details["rule"]).startswith(rule_prefix), event.details
    assert event.details["reason"], event.details
    route = client.route
    expected = {"dealer_id": route.dealer_id, "customer_id": route.customer_id, "site_id": route.site_id,
                "device_id": route.device_id, "user_id": route.user_id, "session_id": route.session_id}
    got = {k: getattr(event, k, None) or event.details.get(k) for k in expected}
    assert got == expected, (got, event)
    return dict(event.details)


async def still_serves_pages(client: SessionClient) -> None:
    ok = await client.request("GET", "/")
    assert ok.status_code == 200 and "Hostile home" in ok.text, ok.text[:300]


# --- F1: towards the technician ----------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(PAGES))
async def test_a_page_carrying_a_file_in_another_alphabet_is_refused(harness, device, name):
    client = await technician(harness, device)
    try:
        _, _, payload = PAGES[name]
        r = await client.request("GET", f"/alpha/{name}")
        assert r.status_code == 403, (r.status_code, r.text[:200])
        middle = payload[len(payload) // 2 : len(payload) // 2 + 40]
        assert middle not in r.text
        details = await assert_one_attributed_refusal(harness, client, "download.")
        assert details["direction"] == "response"
        await still_serves_pages(client)
    finally:
        await client.http.aclose()


async def test_pages_in_other_languages_and_with_emoji_are_served(harness, device):
    client = await technician(harness, device)
    try:
        r = await client.request("GET", "/languages")
        assert r.status_code == 200 and "用紙サイズ" in r.text
        assert await refusals(harness, client) == []
    finally:
        await client.http.aclose()


# --- F2: towards the device ----------------------------------------------------------------------

UPLOADS = {
    "json-hex-as-punctuation": ("json", hex_as(UP, PUN16)),  # the demo's fetch('/api/settings')
    "json-hex-as-g-v": ("json", hex_as(UP, LAT16)),
    "json-hex-as-cjk": ("json", hex_as(UP, CJK16)),
    "json-hex-as-cyrillic": ("json", hex_as(UP, CYR16)),
    "json-hex-as-emoji": ("json", hex_as(UP, EMO16)),
    "json-base32-as-cyrillic": ("json", b32_as(UP, CYR32)),
    "json-octal-escapes": ("json", octal(UP)),
    "json-u16-numbers": ("json-list", ""),
    "form-hex-as-punctuation": ("form", hex_as(UP, PUN16)),
    "form-base32-as-cyrillic": ("form", b32_as(UP, CYR32)),
}


@pytest.mark.parametrize("name", sorted(UPLOADS))
async def test_a_request_carrying_a_file_in_another_alphabet_is_refused(harness, device, name):
    how, payload = UPLOADS[name]
    client = await technician(harness, device)
    try:
        mark = len(device.state.log)
        if how == "json":
            body = json.dumps({"note": payload}, ensure_ascii=False).encode()
            probe = payload[len(payload) // 2 : len(payload) // 2 + 30].encode()
            r = await client.request("POST", "/sink", content=body, headers={"content-type": "application/json"})
        elif how == "json-list":
            numbers = u16(UP)
            probe = ",".join(map(str, numbers[300:306])).encode()
            r = await client.request("POST", "/sink", content=json.dumps({"v": numbers}, separators=(",", ":")).encode(),
                                     headers={"content-type": "application/json"})
        else:
            probe = urlencode({"x": payload[len(payload) // 2 : len(payload) // 2 + 30]})[2:].encode()
            r = await client.request("POST", "/sink", content=urlencode({"note": payload, "name": "hall"}).encode(),
                                     headers={"content-type": "application/x-www-form-urlencoded"})
        assert r.status_code == 403, (r.status_code, r.text[:300])
        assert not device.state.saw(probe, since=mark), "the payload reached the device"
        details = await assert_one_attributed_refusal(harness, client, "upload.")
        assert "encoded" in str(details["rule"]) or "encoded" in details["reason"], details
        await still_serves_pages(client)
    finally:
        await client.http.aclose()


async def test_small_requests_of_invisible_bits_add_up_on_the_tally(harness, device):
    """400 bytes as zero-width bits per request (533 base64 characters' worth: under the 1024
    a request may carry) reach the device a few times, then the per-user tally refuses."""
    client = await technician(harness, device)
    try:
        data = random.Random(7).randbytes(4000)
        statuses = []
        for i in range(0, len(data), 400):
            body = json.dumps({"note": "note" + zero_width(data[i : i + 400]) + "end"}, ensure_ascii=False).encode()
            r = await client.request("POST", "/sink", content=body, headers={"content-type": "application/json"})
            statuses.append(r.status_code)
            if r.status_code != 200:
                break
        assert statuses[0] == 200  # one small note goes through
        assert statuses[-1] == 403 and len(statuses) <= 5, statuses  # 2048 characters' worth per user and device
        details = await assert_one_attributed_refusal(harness, client, "upload.session_encoded")
        assert details["reason"]
        await still_serves_pages(client)
    finally:
        await client.http.aclose()


async def test_ordinary_notes_in_any_language_reach_the_device(harness, device):
    client = await technician(harness, device)
    try:
        for note in ("Drucker im Flur, 2. Stock — bitte Toner prüfen", "Принтер в коридоре, второй этаж",
                     "２階の廊下のプリンター。トナーを確認してください 👍", "Printer A4 tray 2 — 300 dpi"):
            mark = len(device.state.log)
            r = await client.request("POST", "/sink", content=json.dumps({"note": note}, ensure_ascii=False).encode(),
                                     headers={"content-type": "application/json"})
            assert r.status_code == 200, (note, r.text[:200])
            assert device.state.saw(note.encode(), since=mark)
        assert await refusals(harness, client) == []
    finally:
        await client.http.aclose()


# --- WebSocket text frames, both ways ------------------------------------------------------------

async def test_websocket_frames_in_other_alphabets_are_dropped_both_ways(harness, device):
    client = await technician(harness, device)
    session = aiohttp.ClientSession()
    try:
        sock = await session.ws_connect(f"http://127.0.0.1:{harness.proxy.port}/ws-alpha",
                                        headers={"host": client.netloc, "cookie": client.cookie or ""})
        texts: list[str] = []
        async with asyncio.timeout(10):
            async for msg in sock:
                assert msg.type == WSMsgType.TEXT
                texts.append(msg.data)
                if '"seq": 2' in msg.data:
                    break
        assert texts == [json.dumps({"status": "ready", "seq": 1}), json.dumps({"status": "ready", "seq": 2})]
        up = random.Random(12).randbytes(1200)
        mark = len(device.state.log)
        for alphabet in (PUN16, CJK16, LAT16):
            await sock.send_str(json.dumps({"note": hex_as(up, alphabet)}, ensure_ascii=False))
        await sock.send_str("ping after")
        async with asyncio.timeout(10):
            echo = await sock.receive()
        assert echo.type == WSMsgType.TEXT and json.loads(echo.data) == {"echo": len("ping after")}
        for alphabet in (PUN16, CJK16, LAT16):
            assert not device.state.saw(hex_as(up, alphabet)[1000:1040].encode(), since=mark)
        assert device.state.saw(b"ping after", since=mark)
        await sock.close()
    finally:
        await session.close()
    rules: list[str] = []
    for _ in range(50):
        rules = sorted(str(e.details["rule"]) for e in await refusals(harness, client))
        if len(rules) >= 5:
            break
        await asyncio.sleep(0.1)
    assert rules == ["websocket.encoded_from_browser"] * 3 + ["websocket.encoded_from_device"] * 2, rules
    await still_serves_pages(client)
    await client.http.aclose()


# --- no false positives: the lab printers' pages ---------------------------------------------------

LAB_PATHS = ["/", "/login", "/status", "/settings", "/addressbook", "/firmware", "/style.css", "/extra.css",
             "/styled", "/api/status", "/api/settings", "/bench/small", "/bench/100k"]


async def test_the_lab_printers_pages_hold_no_information_in_other_alphabets():
    """Every lab printer's pages: 0 characters' worth on the per-user tally's count and no
    any-alphabet hit at the upload allowance (the strictest), looked at five times (random looks)."""
    async with EwsLab() as lab, httpx.AsyncClient(verify=False) as http:
        counted = {}
        for name, server in lab.servers.items():
            for path in LAB_PATHS:
                body = (await http.get(server.origin + path)).content
                hits = [encoded.any_alphabet(body, 1024) for _ in range(5)]
                counted[f"{name}{path}"] = (encoded.alphabet_chars(body), encoded.encoded_chars(body), any(hits))
    assert counted and all(v == (0, 0, False) for v in counted.values()), {k: v for k, v in counted.items() if v != (0, 0, False)}
