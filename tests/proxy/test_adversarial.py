"""Adversarial suite (issue 21): a hostile device behind a real session, and an attacker's
requests and page scripts, try every way to move a file through the proxy.

One hostile device (``hostile_device.py``, logs every byte that reaches it) and one proxy
serve the whole module. Each case is attempted for real through the session; then the
attacker's answer is a refusal, the audit trail holds a ``dwa.transfer_blocked`` record
saying what was refused, the device log proves an upload's payload never arrived (or the
download's bytes never reached the client), and the same session still serves its home page.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import gc
import json
import os
import quopri
import re
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
import httpx
import pytest

from gateway.proxy.routes import SessionRoute
from tests.proxy.conftest import ProxyHarness, SessionClient
from tests.proxy.hostile_device import (
    CRAFTED,
    DEVICE_TOKEN,
    DOWNLOADS,
    MARK,
    OTHER_B64,
    SECRET,
    HostileDevice,
    bomb,
    crafted,
    groups,
    secret_zip,
    word_code,
    z85,
)

B64 = base64.b64encode(SECRET)
B64URL = base64.urlsafe_b64encode(SECRET).rstrip(b"=")


def marker(encoded: bytes) -> bytes:
    """A piece of an encoded payload that survives URL-encoding unchanged (to look for in the device log)."""
    m = re.search(rb"[A-Za-z0-9]{24}", encoded[len(encoded) // 2 :])
    assert m is not None
    return m.group()


@pytest.fixture(scope="module")
async def hostile() -> AsyncIterator[HostileDevice]:
    async with HostileDevice() as device:
        yield device


@pytest.fixture(scope="module")
def proxy_harness(harness: ProxyHarness) -> ProxyHarness:
    """The shared proxy (mitmproxy keeps global state: one DwaProxy per process at a time)."""
    return harness


def open_route(harness: ProxyHarness, device: HostileDevice, vendor: str = "") -> SessionRoute:
    sid = uuid.uuid4().hex[:12]
    route = SessionRoute(
        session_id=sid, host=harness.proxy.session_host(sid), upstream_host=device.host,
        upstream_port=device.port, device_origin=device.origin, device_scheme="http",
        pinned_fingerprint=None, expires_at=datetime.now(UTC) + timedelta(minutes=30),
        idle_timeout_s=600, device_label="Hostile printer", customer_name="ACME", vendor=vendor,
    )
    harness.routes.add(route)
    return route


@pytest.fixture(scope="module")
async def attacker(proxy_harness: ProxyHarness, hostile: HostileDevice) -> AsyncIterator[SessionClient]:
    """The one session every case runs through (it must survive them all)."""
    client = SessionClient(proxy_harness, open_route(proxy_harness, hostile))
    await client.launch()
    yield client
    await client.aclose()


@dataclass
class Outcome:
    rule: str
    details: dict[str, Any]


async def blocked_record(harness: ProxyHarness, client: SessionClient, seen: int) -> list[Any]:
    events = await harness.events(client.route.session_id)
    return [e for e in events if e.type == "dwa.transfer_blocked"][seen:]


async def count_blocked(harness: ProxyHarness, client: SessionClient) -> int:
    return len([e for e in await harness.events(client.route.session_id) if e.type == "dwa.transfer_blocked"])


async def still_serves_pages(client: SessionClient) -> None:
    ok = await client.request("GET", "/")
    assert ok.status_code == 200 and "Hostile home" in ok.text, ok.text[:300]


async def assert_refused_upload(
    harness: ProxyHarness, client: SessionClient, device: HostileDevice,
    send: Callable[[SessionClient], Awaitable[httpx.Response]], *, rule: str, payload: bytes,
) -> Outcome:
    mark = len(device.state.log)
    before = await count_blocked(harness, client)
    resp = await send(client)
    assert resp.status_code == 403, (resp.status_code, resp.text[:400])
    assert not device.state.saw(payload, since=mark), "the payload reached the device"
    new = await blocked_record(harness, client, before)
    assert len(new) == 1, [(e.type, e.details) for e in new]
    details = new[0].details
    assert new[0].outcome == "blocked" and details["blocked"] is True
    assert str(details["rule"]).startswith(rule), details
    assert details["direction"] == "request" and details["reason"]
    await still_serves_pages(client)
    return Outcome(str(details["rule"]), details)


# --- uploads: technician -> device ---------------------------------------------------------

def form(fields: list[tuple[str, str]]) -> dict[str, Any]:
    return {"content": urlencode(fields).encode(), "headers": {"content-type": "application/x-www-form-urlencoded"}}


def text(body: bytes, ctype: str = "text/plain") -> dict[str, Any]:
    return {"content": body, "headers": {"content-type": ctype}}


def multipart(parts: list[tuple[str, bytes, str | None]]) -> dict[str, Any]:
    """Parts WITHOUT a filename: (name, value, content type or None)."""
    boundary = "----hostile" + uuid.uuid4().hex
    chunks = []
    for name, value, ctype in parts:
        head = f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n'
        if ctype:
            head += f"Content-Type: {ctype}\r\n"
        chunks.append(head.encode() + b"\r\n" + value + b"\r\n")
    body = b"".join(chunks) + f"--{boundary}--\r\n".encode()
    return {"content": body, "headers": {"content-type": f"multipart/form-data; boundary={boundary}"}}


def pieces(encoded: bytes, size: int) -> list[str]:
    return [encoded[i : i + size].decode() for i in range(0, len(encoded), size)]


XML_FILE = (b"<?xml version='1.0' encoding='UTF-8'?>\n<addressbook>\n"
            + b"".join(b"  <entry id='%d'><name>Person %d</name><fax>+49 30 %04d</fax></entry>\n" % (i, i, i)
                       for i in range(110)) + b"</addressbook>\n")
XML_NO_DECL = b"<backup>" + b"".join(b"<item k='%d'>value %d</item>" % (i, i) for i in range(60)) + b"</backup>"
PS_JOB = b"%!PS-Adobe-3.0\n/Helvetica findfont 12 scalefont setfont 72 720 moveto (secret) show showpage\n"
HEX_SPACED = " ".join(f"{c:02x}" for c in SECRET[:1024]).encode()
# binary in bytes 0x01-0x7f (valid UTF-8, no NUL; no ESC either, which would make it a PCL job)
SEVEN_BIT = bytes(1 + c % 127 for c in SECRET[:2048]).replace(b"\x1b", b"\x1c")
ENGLISH = ("The printer in room 101 needs a new drum unit soon and the toner is low. " * 60).encode()

# (id, method, path, request kwargs, rule prefix, what must never reach the device)
SP8 = groups(B64[:3000].decode(), 8, " ")
SP4 = groups(B64[:6000].decode(), 4, " ")
UU = b"".join(binascii.b2a_uu(SECRET[i : i + 45]) for i in range(0, 2250, 45))
WS_BITS = "".join(" " if (c >> i) & 1 else "\t" for c in SECRET[:512] for i in range(8)).encode()
B85 = base64.b85encode(SECRET[:2048])
Z85 = z85(SECRET[:2048])
BITS = "".join(f"{c:08b}" for c in SECRET[:1024])
HEX_LIST = ",".join(f"0x{c:02x}" for c in SECRET[:1024])
B64_OTHER = base64.b64encode(SECRET[:2048]).translate(OTHER_B64)
UPLOADS: list[tuple[str, str, str, dict[str, Any], str, bytes]] = [
    ("query-base64url-6k", "GET", "/sink?data=" + B64URL.decode(), {}, "upload.query_encoded", marker(B64URL)),
    ("query-hex", "GET", "/sink?d=" + SECRET[:2048].hex(), {}, "upload.query_encoded", SECRET[:2048].hex()[900:940].encode()),
    ("query-base32", "GET", "/sink?d=" + base64.b32encode(SECRET[:2048]).decode().rstrip("="), {}, "upload.query_encoded",
     base64.b32encode(SECRET[:2048])[600:640]),
    ("query-split-over-fields", "GET", "/sink?" + "&".join(f"p{i}={p}" for i, p in enumerate(pieces(B64URL, 200))), {},
     "upload.query_encoded", marker(B64URL)),
    ("query-binary-percent", "GET", "/sink?d=" + "".join(f"%{c:02X}" for c in SECRET[:1500]), {}, "upload.query_binary",
     "".join(f"%{c:02X}" for c in SECRET[700:716]).encode()),
    ("path-base64url", "GET", "/sink/" + B64URL[:3000].decode(), {}, "upload.path_encoded", marker(B64URL[:3000])),
    ("form-base64-3k-fields", "POST", "/sink", form([(f"f{i}", p) for i, p in enumerate(pieces(B64, 3072))]),
     "upload.encoded_blob", marker(B64)),
    ("form-base64-small-fields", "POST", "/sink", form([(f"f{i}", p) for i, p in enumerate(pieces(B64URL, 150))]),
     "upload.encoded_blob", marker(B64URL)),
    ("text-mime-wrapped-base64", "POST", "/sink", text(base64.encodebytes(SECRET[:4096])), "upload.encoded_blob",
     marker(base64.encodebytes(SECRET[:4096]))),
    ("json-array-4k-strings", "POST", "/sink", text(json.dumps({"chunks": pieces(B64, 4000)}).encode(), "application/json"),
     "upload.encoded_blob", marker(B64)),
    ("json-array-small-strings", "POST", "/sink", text(json.dumps(pieces(B64, 100)).encode(), "application/json"),
     "upload.encoded_blob", marker(B64)),
    ("json-unicode-escaped", "POST", "/sink",
     text(("{\"v\":\"" + "".join(f"\\u{c:04x}" for c in B64[:1200]) + "\"}").encode(), "application/json"),
     "upload.encoded_blob", b"\\u00"),
    ("json-byte-array", "POST", "/sink", text(json.dumps(list(SECRET[:2048])).encode(), "application/json"),
     "upload.encoded_blob", ",".join(str(c) for c in SECRET[1000:1010]).encode()),
    ("text-quoted-printable", "POST", "/sink", text(quopri.encodestring(SECRET[:2048])), "upload.encoded_blob",
     quopri.encodestring(SECRET[:2048])[1000:1030]),
    ("text-uuencoded", "POST", "/sink",
     text(b"".join(binascii.b2a_uu(SECRET[i : i + 45]) for i in range(0, 2250, 45))), "upload.encoded_blob",
     binascii.b2a_uu(SECRET[900:945])),
    ("text-spaced-hex", "POST", "/sink", text(HEX_SPACED), "upload.encoded_blob", HEX_SPACED[900:960]),
    ("text-ascii85", "POST", "/sink", text(base64.a85encode(SECRET[:2048], adobe=True)), "upload.encoded_blob",
     base64.a85encode(SECRET[:2048], adobe=True)[900:930]),
    ("multipart-no-filename-7bit-binary", "POST", "/sink", multipart([("cfg", SEVEN_BIT, None)]), "upload.binary_body",
     SEVEN_BIT[1000:1020]),
    ("multipart-no-filename-base64", "POST", "/sink", multipart([("cfg", B64[:3000], "text/plain")]),
     "upload.encoded_blob", marker(B64[:3000])),
    ("multipart-no-filename-xml", "POST", "/sink", multipart([("cfg", XML_FILE[:4000], None)]),
     "upload.document_as_text", b"Person 42"),
    ("multipart-no-filename-postscript", "POST", "/sink", multipart([("job", b"\n" + PS_JOB, None)]),
     "upload.sniffed_postscript", b"findfont"),
    ("multipart-split-fields", "POST", "/sink", multipart([(f"p{i}", p.encode(), None) for i, p in enumerate(pieces(B64, 150))]),
     "upload.encoded_blob", marker(B64)),
    ("postscript-after-newline", "POST", "/sink", text(b"\n" + PS_JOB), "upload.sniffed_postscript", b"findfont"),
    ("pjl-job-after-newline", "POST", "/sink", text(b"\n\x1b%-12345X@PJL ENTER LANGUAGE=POSTSCRIPT\n" + PS_JOB),
     "upload.sniffed_pjl", b"findfont"),
    ("pjl-text-after-newline", "POST", "/sink", text(b"\r\n@PJL SET COPIES=1\r\n@PJL ENTER LANGUAGE=PCL\r\n"),
     "upload.sniffed_pjl", b"SET COPIES"),
    ("postscript-in-form-field", "POST", "/sink", form([("note", (b"\n" + PS_JOB).decode())]), "upload.sniffed_postscript",
     b"findfont"),
    ("pdf-inside-json", "POST", "/sink", text(json.dumps({"doc": "\n%PDF-1.7\n1 0 obj"}).encode(), "application/json"),
     "upload.sniffed_pdf", b"1 0 obj"),
    ("pdf-mid-line-with-objects", "POST", "/sink", text(b"comment %PDF-1.7 1 0 obj << >> endobj"), "upload.sniffed_pdf",
     b"1 0 obj"),
    ("postscript-mid-line-with-operators", "POST", "/sink",
     text(b"note %!PS-Adobe-3.0 /Helvetica findfont 12 scalefont setfont (x) show showpage"), "upload.sniffed_postscript",
     b"findfont"),
    ("postscript-after-leading-junk", "POST", "/sink", text(b"hello\n  %!PS-Adobe-3.0\nshowpage\n"),
     "upload.sniffed_postscript", b"showpage"),
    ("zip-after-text", "POST", "/sink", text(b"hello device\n" + secret_zip()), "upload.sniffed_zip", MARK),
    ("xml-file-as-text-plain-7k", "POST", "/sink", text(XML_FILE[:7000]), "upload.document_as_text", b"Person 42"),
    ("xml-without-declaration", "POST", "/sink", text(XML_NO_DECL), "upload.document_as_text", b"value 42"),
    ("xml-inside-json-value", "POST", "/sink", text(json.dumps({"cfg": XML_FILE[:2000].decode()}).encode(), "application/json"),
     "upload.document_as_text", b"Person 12"),
    ("custom-header-base64", "GET", "/sink", {"headers": {"x-data": B64[:3000].decode()}}, "upload.headers_encoded",
     marker(B64[:3000])),
    ("custom-headers-split", "GET", "/sink", {"headers": {f"x-part-{i}": p for i, p in enumerate(pieces(B64URL, 150))}},
     "upload.headers_encoded", marker(B64URL)),
    ("accept-language-base64", "GET", "/sink", {"headers": {"accept-language": B64URL[:1200].decode()}},
     "upload.headers_encoded", marker(B64URL[:1200])),
    ("cookie-base64", "GET", "/sink", {"headers": {"cookie": "ewsdata=" + B64URL[:3000].decode()}},
     "upload.cookies_encoded", marker(B64URL[:3000])),
    ("cookies-split", "GET", "/sink",
     {"headers": {"cookie": "; ".join(f"c{i}={p}" for i, p in enumerate(pieces(B64URL[:3600], 150)))}},
     "upload.cookies_encoded", marker(B64URL[:3600])),
    # broken up by separators, or low-entropy encodings (issue 21 follow-up)
    ("json-base64-groups-of-8", "POST", "/sink", text(json.dumps({"location": SP8}).encode(), "application/json"),
     "upload.encoded_blob", SP8[1000:1040].encode()),
    ("json-base64-40-joined-by-x", "POST", "/sink",
     text(json.dumps({"location": groups(B64[:3000].decode(), 40, " x ")}).encode(), "application/json"),
     "upload.encoded_blob", B64[1000:1040]),
    ("form-fields-200-plus-hello-world", "POST", "/sink",
     form([(f"f{i}", p + " hello world") for i, p in enumerate(pieces(B64[:6000], 200))]), "upload.encoded_blob",
     marker(B64[:6000])),
    ("text-ascii85-bare", "POST", "/sink", text(base64.a85encode(SECRET[:2048])), "upload.encoded_blob",
     base64.a85encode(SECRET[:2048])[900:930]),
    ("json-uuencoded-string", "POST", "/sink",
     text(json.dumps({"note": UU.decode()}).encode(), "application/json"), "upload.encoded_blob", UU[900:930]),
    ("text-decimal-bytes", "POST", "/sink", text(" ".join(str(c) for c in SECRET[:2048]).encode()), "upload.encoded_blob",
     " ".join(str(c) for c in SECRET[1000:1010]).encode()),
    ("text-word-code", "POST", "/sink", text(word_code(SECRET[:512]).encode()), "upload.encoded_blob",
     word_code(SECRET[300:310]).encode()),
    ("text-whitespace-binary", "POST", "/sink", text(WS_BITS), "upload.encoded_blob", WS_BITS[:2000]),
    ("query-base64-groups-of-8", "GET", "/sink", {"params": {"note": SP8[:1600]}}, "upload.query_encoded",
     B64[800:808]),
    ("header-x-note-base64-groups-of-8", "GET", "/sink", {"headers": {"x-note": SP8[:1600]}}, "upload.headers_encoded",
     B64[800:808]),
    ("path-base64-groups-of-8", "GET", "/sink/" + quote(SP8[:1600]), {}, "upload.path_encoded", B64[800:808]),
    # other alphabets and plain forms towards the device (issue 21 F3)
    ("text-base85-rfc1924", "POST", "/sink", text(B85), "upload.encoded_blob", B85[1000:1040]),
    ("form-z85-field", "POST", "/sink", form([("note", Z85.decode())]), "upload.encoded_blob", b"note="),
    ("json-binary-digits", "POST", "/sink", text(json.dumps({"v": BITS}).encode(), "application/json"),
     "upload.encoded_blob", BITS[1000:1064].encode()),
    ("json-0x-list", "POST", "/sink", text(json.dumps({"v": HEX_LIST}).encode(), "application/json"),
     "upload.encoded_blob", HEX_LIST[1000:1040].encode()),
    ("text-b64-other-alphabet", "POST", "/sink", text(B64_OTHER), "upload.encoded_blob", B64_OTHER[1000:1040]),
    ("query-binary-digits", "GET", "/sink", {"params": {"v": BITS[:4096]}}, "upload.query_encoded", BITS[1000:1064].encode()),
    ("header-base85", "GET", "/sink", {"headers": {"x-note": B85[:1600].decode()}}, "upload.headers_encoded",
     B85[800:830]),
    # short groups towards the device (issue 21, third round): form fields, a JSON body, a header
    ("form-fields-base64-groups-of-4", "POST", "/sink", form([(f"f{i}", p) for i, p in enumerate(pieces(SP4.encode(), 3200))]),
     "upload.encoded_blob", SP4[1000:1040].replace(" ", "+").encode()),
    ("json-base64-groups-of-4", "POST", "/sink", text(json.dumps({"v": SP4}).encode(), "application/json"),
     "upload.encoded_blob", SP4[1000:1040].encode()),
    ("header-x-data-base64-groups-of-4", "GET", "/sink", {"headers": {"x-data": SP4[:1600].strip()}}, "upload.headers_encoded",
     SP4[800:840].encode()),
    ("request-over-budget", "POST", "/sink", form([(f"note{i}", ENGLISH[:4000].decode()) for i in range(10)]),
     "budget.request", b"note9="),
]


@pytest.mark.parametrize(("method", "path", "kwargs", "rule", "payload"),
                         [pytest.param(*case[1:], id=case[0]) for case in UPLOADS])
async def test_upload_is_refused_audited_and_never_reaches_the_device(
    proxy_harness, attacker, hostile, method, path, kwargs, rule, payload
):
    async def send(client: SessionClient) -> httpx.Response:
        return await client.request(method, path, **kwargs)

    outcome = await assert_refused_upload(proxy_harness, attacker, hostile, send, rule=rule, payload=payload)
    assert outcome.details["path"] == path.split("?", 1)[0]


async def test_vendor_profile_budgets_apply_per_request_and_per_session(proxy_harness, attacker, hostile):
    """A CUPS device's profile allows 8 KiB per request and 128 KiB per session (vendor_endpoints.toml)."""
    chunk = ENGLISH[:2000].decode()
    twelve_kb = [(f"n{j}", chunk) for j in range(6)]
    r = await attacker.request("POST", "/sink", **form(twelve_kb))  # within the default 16 KiB
    assert r.status_code == 200, r.text[:300]
    client = SessionClient(proxy_harness, open_route(proxy_harness, hostile, vendor="Easy Software Products (CUPS)"))
    await client.launch()
    try:
        async def send_twelve(c: SessionClient) -> httpx.Response:
            return await c.request("POST", "/sink", **form(twelve_kb))

        outcome = await assert_refused_upload(proxy_harness, client, hostile, send_twelve, rule="budget.request",
                                              payload=b"n5=")
        assert "8192" in outcome.details["reason"]
        six_kb = [(f"m{j}", chunk) for j in range(3)]
        sent = 0
        while sent < 100:
            r = await client.request("POST", "/sink", **form(six_kb))
            if r.status_code != 200:
                break
            sent += 1
        assert r.status_code == 403 and 15 <= sent <= 25, (sent, r.text[:300])
        last = [(f"final{j}", chunk) for j in range(3)]

        async def send_last(c: SessionClient) -> httpx.Response:
            return await c.request("POST", "/sink", **form(last))

        outcome = await assert_refused_upload(proxy_harness, client, hostile, send_last, rule="budget.session",
                                              payload=b"final2=")
        assert "131072-byte session budget" in outcome.details["reason"]
    finally:
        await client.aclose()


async def test_a_file_trickled_out_in_small_encoded_pieces_is_refused_per_session(proxy_harness, hostile):
    """Issue 21 F4: base64 of a ZIP, 200 characters per request (under every per-request check),
    over many requests: once the session sent 2 KiB of encoded-looking characters the next piece
    is refused and audited, the device never sees it, and ordinary form posts still go through."""
    client = SessionClient(proxy_harness, open_route(proxy_harness, hostile))
    await client.launch()
    try:
        encoded_zip = base64.b64encode(secret_zip()).decode()
        pieces_200 = [encoded_zip[i : i + 200] for i in range(0, 200 * 21, 200)]
        sent = 0
        for piece in pieces_200[:-1]:
            r = await client.request("POST", "/sink", **form([("name", "entry"), ("memo", piece)]))
            if r.status_code != 200:
                break
            sent += 1
        # 2048 characters' worth (the ZIP's first piece, its header and names, is not counted)
        assert r.status_code == 403 and 2048 // 200 <= sent <= 2048 // 200 + 1, (sent, r.status_code, r.text[:300])
        last = pieces_200[-1]

        async def send_last(c: SessionClient) -> httpx.Response:
            return await c.request("POST", "/sink", **form([("name", "entry"), ("memo", last)]))

        outcome = await assert_refused_upload(proxy_harness, client, hostile, send_last,
                                              rule="upload.session_encoded", payload=last[80:140].encode())
        assert "2048-character" in outcome.details["reason"]
        assert not any(p[80:140].encode() in r.raw for p in pieces_200[sent:] for r in hostile.state.log)
        ok = await client.request("POST", "/sink", **form([("name", "Alice Example"), ("fax", "+49 30 1234")]))
        assert ok.status_code == 200
    finally:
        await client.aclose()


async def test_the_session_budget_holds_across_sessions_of_one_user_on_one_device(proxy_harness, hostile):
    """Random data as small text requests: the default 256 KiB is used up in one session, and a new
    session of the same user on the same device cannot continue; another user can."""
    import dataclasses

    def session_of(user: str) -> SessionClient:
        route = dataclasses.replace(open_route(proxy_harness, hostile), user_id=user, device_id="dev-budget")
        proxy_harness.routes.add(route)
        return SessionClient(proxy_harness, route)

    piece = form([(f"n{j}", ENGLISH[:2000].decode()) for j in range(7)])  # 14 KB: under the 16 KiB request budget
    first = session_of("tech-1")
    await first.launch()
    sent = 0
    while sent < 40:
        r = await first.request("POST", "/sink", **piece)
        if r.status_code != 200:
            break
        sent += 1
    assert r.status_code == 403 and 15 <= sent <= 20, (sent, r.text[:300])
    await first.aclose()
    proxy_harness.routes.remove(first.route.session_id, "ended")
    second = session_of("tech-1")
    await second.launch()
    try:
        async def send(c: SessionClient) -> httpx.Response:
            return await c.request("POST", "/sink", **piece)

        outcome = await assert_refused_upload(proxy_harness, second, hostile, send, rule="budget.session",
                                              payload=b"n6=")
        assert "across your sessions" in outcome.details["reason"]
    finally:
        await second.aclose()
    other = session_of("tech-2")
    await other.launch()
    try:
        r = await other.request("POST", "/sink", **piece)
        assert r.status_code == 200, r.text[:300]
    finally:
        await other.aclose()


async def test_ordinary_forms_json_and_cookies_reach_the_device(proxy_harness, attacker, hostile):
    """The control: what EWS forms really send passes (login, settings, address-book entry)."""
    mark = len(hostile.state.log)
    r = await attacker.request("POST", "/sink", **form([("username", "admin"), ("password", "S3cure-Pa55w0rd!"),
                                                        ("location", "Second floor, room 214"), ("csrf", "a" * 64)]))
    assert r.status_code == 200 and r.text == "accepted"
    entry = {"name": "Alice Example", "email": "alice@example.com", "fax": "+49 30 1234567", "speed_dial": 12}
    r = await attacker.request("POST", "/sink", json=entry, headers={"cookie": "ewssid=" + "f" * 32})
    assert r.status_code == 200
    assert hostile.state.saw(b"Second+floor", since=mark) and hostile.state.saw(b"alice@example.com", since=mark)


async def test_notes_that_mention_a_pdf_or_postscript_reach_the_device(proxy_harness, attacker, hostile):
    """Words about a document are not one: a signature in the middle of text without the format's
    structure passes (issue 21 follow-up, item 4)."""
    mark = len(hostile.state.log)
    r = await attacker.request("POST", "/sink", **form([("note", "Printer says %PDF-1.4 error on job")]))
    assert r.status_code == 200 and r.text == "accepted", r.text[:300]
    r = await attacker.request("POST", "/sink", **text(b"Users report jobs starting with %!PS fail"))
    assert r.status_code == 200 and r.text == "accepted", r.text[:300]
    assert hostile.state.saw(b"error+on+job", since=mark) and hostile.state.saw(b"with %!PS fail", since=mark)


async def test_a_long_cookie_the_device_set_is_sent_back_but_an_invented_one_is_refused(proxy_harness, hostile):
    client = SessionClient(proxy_harness, open_route(proxy_harness, hostile))
    await client.launch()
    try:
        r = await client.request("GET", "/signin")
        assert r.status_code == 200 and "ews_token" in r.headers.get("set-cookie", "")
        mark = len(hostile.state.log)
        r = await client.request("GET", "/", headers={"cookie": f"ews_token={DEVICE_TOKEN}"})
        assert r.status_code == 200 and hostile.state.saw(DEVICE_TOKEN[:40].encode(), since=mark)
        invented = base64.urlsafe_b64encode(SECRET[1000:1600]).decode().rstrip("=")

        async def send(c: SessionClient) -> httpx.Response:
            return await c.request("GET", "/", headers={"cookie": f"ews_token={invented}"})

        await assert_refused_upload(proxy_harness, client, hostile, send, rule="upload.cookies_encoded",
                                    payload=invented[100:140].encode())
    finally:
        await client.aclose()


# --- downloads: device -> technician -------------------------------------------------------

# (name under /dl/, rule prefix)
REFUSED_DOWNLOADS = [
    ("svg-binary", "download.not_an_image"),
    ("svg-script", "download.svg_active"),
    ("svg-foreign", "download.svg_active"),
    ("svg-handler", "download.svg_active"),
    ("svg-zip-data", "download.svg_active"),
    ("eot-png", "download.not_a_font"),
    ("eot-random", "download.not_a_font"),
    ("woff2-binary", "download.not_a_font"),
    ("ttf-binary", "download.not_a_font"),
    ("fonts/unreferenced.ttf", "download.font_not_referenced"),
    ("fonts/polyglot.ttf", "download.not_a_font"),  # TTF + ZIP
    ("png-zip", "download.image_carries_file"),
    ("png-zip-chunk", "download.image_carries_file"),
    ("png-text-zip", "download.image_carries_file"),
    ("gif-zip", "download.image_carries_file"),
    ("jpeg-zip", "download.image_carries_file"),
    ("bmp-zip", "download.image_carries_file"),
    ("html-b64-60k", "download.encoded_blob"),
    ("js-b64-2m", "download.encoded_blob"),
    ("html-data-zip", "download.encoded_blob"),
    ("json-wrapped", "download.encoded_blob"),
    ("json-array", "download.encoded_blob"),
    ("html-hex", "download.encoded_blob"),
    ("js-escaped-hex", "download.encoded_blob"),
    ("html-qp", "download.encoded_blob"),
    ("text-uu", "download.encoded_blob"),
    ("js-byte-array", "download.encoded_blob"),
    ("css-b64-font-zip", "download.encoded_blob"),
    ("text-ps-newline", "download.sniffed_postscript"),
    ("html-zip-appended", "download.sniffed_zip"),
    ("html-b64-groups-of-8", "download.encoded_blob"),
    ("html-b64-40-joined-by-x", "download.encoded_blob"),
    ("html-word-code", "download.encoded_blob"),
    ("js-word-code", "download.encoded_blob"),
    ("html-decimal-bytes", "download.encoded_blob"),
    ("js-ascii85-bare", "download.encoded_blob"),
    ("html-ascii85-bare", "download.encoded_blob"),
    ("css-hex-groups", "download.encoded_blob"),
    ("text-b64-groups-of-8", "download.encoded_blob"),
    ("svg-b64-groups-in-desc", "download.encoded_blob"),
    ("html-b64-pieces-in-divs", "download.encoded_blob"),
    ("html-base85-rfc1924", "download.encoded_blob"),
    ("html-z85-text", "download.encoded_blob"),
    ("html-binary-digits", "download.encoded_blob"),
    ("html-0x-list", "download.encoded_blob"),
    ("css-0x-list", "download.encoded_blob"),
    ("html-uuencode-text", "download.encoded_blob"),
    ("html-b64-other-alphabet", "download.encoded_blob"),
    ("html-cjk-per-byte", "download.encoded_blob"),
    ("html-b64-pieces-in-attrs", "download.encoded_blob"),
    ("html-b64-pieces-in-js-push", "download.encoded_blob"),
    ("css-b64-pieces-in-vars", "download.encoded_blob"),
    ("html-hex-pieces-in-divs", "download.encoded_blob"),
    ("html-b32-pieces-in-divs", "download.encoded_blob"),
    ("xml-wrapped-b64", "download.encoded_blob"),
    ("text-pem", "download.sniffed_pem"),
    ("html-b64-groups-of-4", "download.encoded_blob"),
    ("js-b64-bang-every-3", "download.encoded_blob"),
    ("html-hex-g-every-30", "download.encoded_blob"),
    ("json-hex-z-prefix", "download.encoded_blob"),
    ("css-vars-spaced", "download.encoded_blob"),
    ("json-cjk-escaped", "download.encoded_blob"),
]


async def assert_refused_download(harness: ProxyHarness, client: SessionClient, path: str, rule: str,
                                  body: bytes, **kw: Any) -> dict[str, Any]:
    before = await count_blocked(harness, client)
    resp = await client.request("GET", path, **kw)
    assert resp.status_code == 403, (resp.status_code, resp.text[:300])
    assert MARK not in resp.content and SECRET[:64] not in resp.content
    if len(body) > 200:
        assert body[len(body) // 2 : len(body) // 2 + 64] not in resp.content
    new = await blocked_record(harness, client, before)
    assert len(new) == 1, [(e.type, e.details) for e in new]
    details = new[0].details
    assert str(details["rule"]).startswith(rule), details
    assert details["transfer_size"] > 0 or rule == "browser.service_worker"
    await still_serves_pages(client)
    return details


class PeakRss:
    """This process's resident memory, sampled every few milliseconds (the proxy runs in it)."""

    def __init__(self) -> None:
        self.start = self.peak = self._now()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def _now() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _run(self) -> None:
        while not self._stop.wait(0.002):
            self.peak = max(self.peak, self._now())

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._now())


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br"])
async def test_a_compression_bomb_is_refused_without_decoding_it_whole(proxy_harness, attacker, encoding):
    """A body of a few hundred KB that decodes to 200 MB of HTML: decoding stops at the response
    limit, the proxy's memory barely moves, the record holds the encoded and the decoded sizes."""
    body = bomb(encoding)
    before = await count_blocked(proxy_harness, attacker)
    gc.collect()
    with PeakRss() as rss:
        resp = await attacker.request("GET", f"/bomb/{encoding}")
    assert resp.status_code == 403, (resp.status_code, resp.text[:300])
    assert rss.peak - rss.start < 100 * 1024 * 1024, f"RSS grew by {(rss.peak - rss.start) >> 20} MB"
    new = await blocked_record(proxy_harness, attacker, before)
    assert len(new) == 1, [(e.type, e.details) for e in new]
    details = new[0].details
    limit = proxy_harness.proxy.deps.limits.max_response_body
    assert details["rule"] == "download.too_large" and details["direction"] == "response", details
    assert details["transfer_size"] == len(body) and details["decoded_size"] == limit + 1, details
    await still_serves_pages(attacker)


@pytest.mark.parametrize(("name", "rule"), [pytest.param(n, r, id=n) for n, r in REFUSED_DOWNLOADS])
async def test_download_is_refused_and_audited(proxy_harness, attacker, name, rule):
    details = await assert_refused_download(proxy_harness, attacker, f"/dl/{name}", rule, DOWNLOADS[name][0])
    assert details["direction"] == "response"


async def test_crafted_pages_are_refused_without_stalling_another_session(proxy_harness, attacker, hostile):
    """Issue 21 F3 (third round): pages crafted to cost the checks CPU (2-3 MB each, two fetched
    at the same time) are refused and audited while another session's page loads stay quick: the
    checks share the proxy's event loop (before, each such page held it for seconds). The stall
    is measured as the CPU this process (proxy and clients) burns while one of the victim's page
    loads waits: the CI host's other jobs stretch wall time, not that. The heap earlier tests left
    in this pytest process is frozen first, as ``printgate serve`` freezes its own after start
    (``gc_tuning``): a full collection of it cost 1 s of CPU within one page load in a CI run."""
    victim = SessionClient(proxy_harness, open_route(proxy_harness, hostile))
    await victim.launch()
    gc.freeze()
    try:
        for name in CRAFTED:
            crafted(name)  # built before the clock starts

        async def victim_load() -> tuple[float, float]:
            wall, cpu = time.perf_counter(), time.process_time()
            await still_serves_pages(victim)
            return time.perf_counter() - wall, time.process_time() - cpu

        baseline = max([await victim_load() for _ in range(3)])
        before = await count_blocked(proxy_harness, attacker)
        loads = []
        for pair in (["css-vars", "escaped-cjk"], ["groups-of-4"]):
            fetches = [asyncio.create_task(attacker.request("GET", f"/crafted/{name}")) for name in pair]
            while not all(f.done() for f in fetches):
                loads.append(await victim_load())
            for f in fetches:
                assert f.result().status_code == 403, f.result().text[:300]
        new = await blocked_record(proxy_harness, attacker, before)
        # refused as encoded data; or, when the loaded host kept the check's worker off the CPU
        # past its wall-clock bound, as too complex to check (fail closed), never anything else
        assert len(new) == len(CRAFTED) and all(
            e.details["rule"] == "download.encoded_blob"
            or (e.details["rule"] == "download.too_complex" and "wall clock" in json.dumps(e.details))
            for e in new), [(e.type, e.details) for e in new]
        worst_wall, worst_cpu = max(w for w, _ in loads), max(c for _, c in loads)
        print(f"victim page load: baseline {baseline[0] * 1000:.0f} ms ({baseline[1] * 1000:.0f} ms CPU); worst while "
              f"crafted pages were checked {worst_wall * 1000:.0f} ms ({worst_cpu * 1000:.0f} ms CPU)")
        assert worst_cpu < baseline[1] + 0.5, (baseline, worst_wall, worst_cpu)
    finally:
        gc.unfreeze()
        await victim.aclose()


async def test_plain_svg_and_fonts_the_device_css_names_are_served(proxy_harness, attacker):
    svg = await attacker.request("GET", "/dl/svg-plain")
    assert svg.status_code == 200 and svg.content == DOWNLOADS["svg-plain"][0]
    css = await attacker.request("GET", "/device.css")
    assert css.status_code == 200
    font = await attacker.request("GET", "/dl/fonts/device.ttf")
    assert font.status_code == 200 and font.content == DOWNLOADS["fonts/device.ttf"][0]
    # Sec-Fetch-Dest: font alone (curl sets any header) no longer serves a font no style sheet
    # named in a single proxy process (issue 21 round 4, F4; tests/proxy/test_r4_fonts.py) ...
    await assert_refused_download(proxy_harness, attacker, "/dl/fonts/unreferenced.ttf",
                                  "download.font_not_referenced", DOWNLOADS["fonts/unreferenced.ttf"][0],
                                  headers={"sec-fetch-dest": "font", "sec-fetch-mode": "cors"})
    # ... and a polyglot never
    await assert_refused_download(proxy_harness, attacker, "/dl/fonts/polyglot.ttf", "download.not_a_font",
                                  DOWNLOADS["fonts/polyglot.ttf"][0], headers={"sec-fetch-dest": "font"})
    # named by the CSS too, but a ZIP follows the font: refused all the same
    await assert_refused_download(proxy_harness, attacker, "/dl/fonts/polyglot.ttf", "download.not_a_font",
                                  DOWNLOADS["fonts/polyglot.ttf"][0])


async def test_service_worker_script_fetch_is_refused_before_the_device(proxy_harness, attacker, hostile):
    mark = len(hostile.state.log)
    await assert_refused_download(proxy_harness, attacker, "/sw.js", "browser.service_worker", b"",
                                  headers={"service-worker": "script"})
    assert not hostile.state.saw(b"GET /sw.js", since=mark)


async def test_service_worker_allowed_header_never_reaches_the_browser(attacker):
    r = await attacker.request("GET", "/sw.js")
    assert r.status_code == 200
    assert "service-worker-allowed" not in r.headers


async def test_pages_carry_a_sandbox_without_downloads_and_a_permissions_policy(attacker):
    r = await attacker.request("GET", "/")
    csp = r.headers["content-security-policy"]
    sandbox = next(part.split() for part in csp.split(";") if part.strip().startswith("sandbox"))
    assert {"allow-scripts", "allow-forms", "allow-same-origin", "allow-modals", "allow-popups"} <= set(sandbox)
    assert "allow-downloads" not in sandbox and "allow-popups-to-escape-sandbox" not in sandbox
    policy = r.headers["permissions-policy"]
    for feature in ("camera=()", "microphone=()", "usb=()", "clipboard-read=()", "geolocation=()"):
        assert feature in policy


# --- WebSockets ----------------------------------------------------------------------------

async def ws_session(harness: ProxyHarness, client: SessionClient) -> tuple[aiohttp.ClientSession, Any]:
    session = aiohttp.ClientSession()
    sock = await session.ws_connect(f"http://127.0.0.1:{harness.proxy.port}/ws",
                                    headers={"host": client.netloc, "cookie": client.cookie or ""})
    return session, sock


async def received_frames(sock: Any, *, until_seq: int = 2, timeout: float = 10.0) -> list[Any]:
    frames = []
    async with asyncio.timeout(timeout):
        async for msg in sock:
            frames.append(msg)
            if msg.type == aiohttp.WSMsgType.TEXT and f'"seq": {until_seq}' in msg.data:
                break
    return frames


async def ws_blocked_rules(harness: ProxyHarness, client: SessionClient, before: int) -> list[str]:
    """Rules of the frames from the browser refused since ``before`` (the device's own hostile
    frames, sent on every connection, are refused too and left out here)."""
    for _ in range(50):
        new = [str(e.details["rule"]) for e in await blocked_record(harness, client, before)]
        mine = [rule for rule in new if not rule.endswith("_from_device")]
        if mine:
            return mine
        await asyncio.sleep(0.1)
    return []


async def test_device_websocket_frames_carrying_files_are_dropped_and_audited(proxy_harness, attacker):
    before = await count_blocked(proxy_harness, attacker)
    session, sock = await ws_session(proxy_harness, attacker)
    try:
        frames = await received_frames(sock)
    finally:
        await sock.close()
        await session.close()
    texts = [f.data for f in frames if f.type == aiohttp.WSMsgType.TEXT]
    assert any('"seq": 1' in t for t in texts) and any('"seq": 2' in t for t in texts)  # status still flows
    assert not any(f.type == aiohttp.WSMsgType.BINARY for f in frames)
    assert not any("firmware" in t or "%!PS" in t for t in texts)
    rules = []
    for _ in range(50):
        rules = [str(e.details["rule"]) for e in await blocked_record(proxy_harness, attacker, before)]
        if len(rules) >= 3:
            break
        await asyncio.sleep(0.1)
    assert sorted(rules) == sorted(["websocket.encoded_from_device", "websocket.binary_from_device",
                                    "websocket.document_from_device"]), rules
    await still_serves_pages(attacker)


@pytest.mark.parametrize(
    ("frame", "rule"),
    [
        pytest.param(B64.decode() * 7, "websocket.encoded_from_browser", id="ws-text-58k-base64"),
        pytest.param(B64URL[:400].decode(), "websocket.encoded_from_browser", id="ws-text-small-base64"),
        pytest.param(groups(B64[:3000].decode(), 8, " "), "websocket.encoded_from_browser", id="ws-text-base64-groups-of-8"),
        pytest.param(groups(B64[:3000].decode(), 4, " "), "websocket.encoded_from_browser", id="ws-text-base64-groups-of-4"),
        pytest.param(SECRET, "websocket.binary_from_browser", id="ws-binary-frame"),
        pytest.param("\n" + PS_JOB.decode(), "websocket.document_from_browser", id="ws-text-postscript"),
        pytest.param(ENGLISH.decode() * 9, "budget.request", id="ws-text-over-request-budget"),
    ],
)
async def test_browser_websocket_frames_carrying_files_are_dropped_and_audited(
    proxy_harness, attacker, hostile, frame, rule
):
    before = await count_blocked(proxy_harness, attacker)
    mark = len(hostile.state.log)
    session, sock = await ws_session(proxy_harness, attacker)
    try:
        await received_frames(sock)
        if isinstance(frame, bytes):
            await sock.send_bytes(frame)
        else:
            await sock.send_str(frame)
        await sock.send_str("ping after")
        async with asyncio.timeout(10):
            echo = await sock.receive()
        assert echo.type == aiohttp.WSMsgType.TEXT and json.loads(echo.data) == {"echo": len("ping after")}
    finally:
        await sock.close()
        await session.close()
    piece = frame[len(frame) // 2 : len(frame) // 2 + 40]
    assert not hostile.state.saw(piece if isinstance(piece, bytes) else piece.encode(), since=mark)
    assert hostile.state.saw(b"ping after", since=mark)  # the connection itself stays usable
    rules = await ws_blocked_rules(proxy_harness, attacker, before)
    assert rules == [rule], rules
    await still_serves_pages(attacker)


# --- the technician's browser runs the device's scripts (Chromium) ---------------------------

async def open_in_chromium(browser: Any, harness: ProxyHarness, device: HostileDevice,
                           tmp_path: Any) -> tuple[Any, Any, str, SessionRoute]:
    route = open_route(harness, device)
    context = await browser.new_context(accept_downloads=True)
    page = await context.new_page()
    await page.goto(harness.launch_url(route))
    await page.wait_for_url(re.compile(r".*/$"))
    await page.wait_for_selector("#title")
    return context, page, harness.proxy.session_origin(route.session_id), route


async def saved_download(page: Any, click: str, tmp_path: Any) -> Any:
    """Click ``click``; the saved file's path if the browser saved one, else None."""
    downloads: list[Any] = []
    page.on("download", lambda d: downloads.append(d))
    await page.click(click)
    await asyncio.sleep(1.5)
    for d in downloads:
        target = tmp_path / f"saved-{uuid.uuid4().hex}"
        try:
            await d.save_as(target)
        except Exception:
            continue
        if target.exists():
            return target
    return None


SCRIPT_DOWNLOADS = [
    pytest.param("/page/blob", id="blob-download-link"),
    pytest.param("/page/fetch-save", id="fetch-then-save-as-blob"),
    pytest.param("/page/data-url", id="data-url-download-link"),
    pytest.param("/page/same-origin-download", id="same-origin-download-attribute"),
]


@pytest.mark.browser
@pytest.mark.parametrize("path", SCRIPT_DOWNLOADS)
async def test_chromium_saves_nothing_a_device_page_starts(browser, proxy_harness, hostile, tmp_path, path):
    # the same page straight from the device does save a file (the attack is real) ...
    direct = await browser.new_context(accept_downloads=True)
    try:
        page = await direct.new_page()
        await page.goto(f"{hostile.origin}{path}")
        await page.wait_for_selector("#state:has-text('ready')")
        assert await saved_download(page, "#save", tmp_path) is not None, "the hostile page did not download directly"
    finally:
        await direct.close()
    # ... through the proxy the browser refuses it: nothing lands on disk
    saved_before = set(tmp_path.iterdir())
    context, page, origin, _route = await open_in_chromium(browser, proxy_harness, hostile, tmp_path)
    try:
        await page.goto(origin + path)
        await page.wait_for_selector("#state:has-text('ready')")
        assert await saved_download(page, "#save", tmp_path) is None, "Chromium saved the file"
        assert set(tmp_path.iterdir()) == saved_before
        # the session keeps working in the same tab
        await page.goto(origin + "/")
        await page.wait_for_selector("#title")
    finally:
        await context.close()


@pytest.mark.browser
async def test_chromium_cannot_register_a_device_service_worker(browser, proxy_harness, hostile, tmp_path):
    context, page, origin, route = await open_in_chromium(browser, proxy_harness, hostile, tmp_path)
    mark = len(hostile.state.log)
    try:
        await page.goto(origin + "/page/service-worker")
        await page.wait_for_selector("#state:text-matches('registered|refused')")
        assert (await page.text_content("#state")).startswith("refused")
        assert await page.evaluate("navigator.serviceWorker.getRegistrations().then(r => r.length)") == 0
        assert not hostile.state.saw(b"GET /sw.js", since=mark)
        events = await proxy_harness.events(route.session_id)
        assert any(e.type == "dwa.transfer_blocked" and e.details["rule"] == "browser.service_worker" for e in events)
        await page.goto(origin + "/")
        await page.wait_for_selector("#title")
    finally:
        await context.close()


@pytest.mark.browser
async def test_chromium_applies_the_permissions_policy(browser, proxy_harness, hostile, tmp_path):
    features = ["camera", "microphone", "usb", "serial", "clipboard-read", "geolocation", "payment"]
    script = f"{features!r}.map(f => [f, document.featurePolicy.allowsFeature(f)])"
    direct = await browser.new_context()
    try:
        page = await direct.new_page()
        await page.goto(hostile.origin + "/")
        allowed_directly = dict(await page.evaluate(script))
    finally:
        await direct.close()
    assert any(allowed_directly.values()), allowed_directly  # the browser's default allows them
    context, page, _origin, _route = await open_in_chromium(browser, proxy_harness, hostile, tmp_path)
    try:
        through_proxy = dict(await page.evaluate(script))
    finally:
        await context.close()
    assert not any(through_proxy.values()), through_proxy


@pytest.mark.browser
async def test_chromium_loads_the_fonts_a_device_style_sheet_names(browser, proxy_harness, hostile, tmp_path):
    context, page, origin, route = await open_in_chromium(browser, proxy_harness, hostile, tmp_path)
    mark = len(hostile.state.log)
    try:
        await page.goto(origin + "/page/fonts")
        await page.wait_for_selector("#state")
        await page.evaluate("document.fonts.load('16px dev').catch(() => null)")
        for _ in range(50):
            if hostile.state.saw(b"GET /dl/fonts/device.ttf", since=mark):
                break
            await asyncio.sleep(0.1)
        assert hostile.state.saw(b"GET /dl/fonts/device.ttf", since=mark)
        events = await proxy_harness.events(route.session_id)
        font = [e for e in events if e.details.get("path") == "/dl/fonts/device.ttf"]
        assert font and font[-1].type == "dwa.request" and font[-1].details["status"] == 200, font
    finally:
        await context.close()
