"""Attack tests: every file transfer through the proxy is blocked, audited, and never reaches the device.

Each test opens its own session on the shared proxy against a lab printer EWS,
attempts one transfer for real, then checks what the attacker saw, what the
device received and what the audit trail holds; the session must keep working.
"""

from __future__ import annotations

import base64
import io
import json
import zipfile

import httpx
import pytest

from lab.ews import EwsLab, EwsServer
from tests.proxy.conftest import ProxyHarness, SessionClient

PRINTER = "jetdirect_m130nw"


def firmware_blob() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("fw.bin", bytes(range(256)) * 64)
    return buf.getvalue()


@pytest.fixture
def ews(ews_lab: EwsLab) -> EwsServer:
    return ews_lab[PRINTER]


async def assert_blocked_and_audited(
    harness: ProxyHarness, client: SessionClient, ews: EwsServer, resp, *, rule_prefix: str, received_before: int
) -> dict:
    assert resp.status_code == 403, resp.text[:300]
    assert len(ews.state.received) == received_before, "the transfer reached the device"
    events = await harness.events(client.route.session_id)
    blocked = [e for e in events if e.type == "dwa.transfer_blocked"]
    assert blocked, [(e.type, e.details) for e in events]
    details = blocked[-1].details
    assert details["blocked"] is True
    assert str(details["rule"]).startswith(rule_prefix), details
    assert blocked[-1].outcome == "blocked"
    for key in ("method", "path", "transfer_type", "transfer_size"):
        assert key in details
    # the session keeps working
    ok = await client.request("GET", "/")
    assert ok.status_code == 200 and "Device home" in ok.text
    return details


async def test_multipart_upload_via_firmware_form_is_blocked(harness, session_client, ews):
    c = await session_client(ews)
    before = len(ews.state.received)
    r = await c.request("POST", "/firmware/upload", files={"firmware": ("fw.bin", firmware_blob(), "application/octet-stream")})
    d = await assert_blocked_and_audited(harness, c, ews, r, rule_prefix="vendor.firmware_upload", received_before=before)
    assert d["method"] == "POST" and d["path"] == "/firmware/upload"
    assert "Blocked by policy" in r.text


async def test_multipart_file_part_to_harmless_endpoint_is_blocked(harness, session_client, ews):
    c = await session_client(ews)
    before = len(ews.state.received)
    r = await c.request("POST", "/settings", files={"location": ("notes.txt", b"just text", "text/plain")})
    await assert_blocked_and_audited(harness, c, ews, r, rule_prefix="upload.multipart_file", received_before=before)


async def test_upload_with_lying_content_type_is_blocked(harness, session_client, ews):
    c = await session_client(ews)
    before = len(ews.state.received)
    r = await c.request(
        "POST", "/settings", content=firmware_blob(),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    d = await assert_blocked_and_audited(harness, c, ews, r, rule_prefix="upload.sniffed_zip", received_before=before)
    assert d["transfer_type"] == "application/x-www-form-urlencoded"
    assert d["transfer_size"] == len(firmware_blob())


async def test_binary_body_declared_as_text_is_blocked(harness, session_client, ews):
    c = await session_client(ews)
    before = len(ews.state.received)
    r = await c.request("POST", "/api/settings", content=bytes(range(256)) * 4, headers={"content-type": "text/plain"})
    await assert_blocked_and_audited(harness, c, ews, r, rule_prefix="upload.binary_body", received_before=before)


async def test_fetch_put_is_blocked_with_json_403(harness, session_client, ews):
    c = await session_client(ews)
    before = len(ews.state.received)
    r = await c.request(
        "PUT", "/api/settings", json={"location": "x"},
        headers={"sec-fetch-mode": "cors", "sec-fetch-dest": "empty"},
    )
    await assert_blocked_and_audited(harness, c, ews, r, rule_prefix="upload.method", received_before=before)
    assert r.headers["content-type"].startswith("application/json")
    assert r.json()["error"] == "blocked_by_policy"


@pytest.mark.parametrize("method", ["DELETE", "PATCH", "PROPFIND", "MKCOL"])
async def test_write_methods_are_blocked(harness, session_client, ews, method):
    c = await session_client(ews)
    before = len(ews.state.received)
    r = await c.request(method, "/api/settings")
    await assert_blocked_and_audited(harness, c, ews, r, rule_prefix="upload.method", received_before=before)


async def test_ipp_print_job_is_blocked(harness, session_client, ews):
    c = await session_client(ews)
    before = len(ews.state.received)
    job = b"\x02\x00\x00\x02\x00\x00\x00\x01\x01G\x00\x12attributes-charset\x00\x05utf-8\x03%PDF-1.4 fake job"
    r = await c.request("POST", "/ipp/print", content=job, headers={"content-type": "application/ipp"})
    await assert_blocked_and_audited(harness, c, ews, r, rule_prefix="vendor.print_job", received_before=before)
    # the same job to an innocent-looking path is caught by its type
    r = await c.request("POST", "/api/settings", content=job, headers={"content-type": "application/ipp"})
    await assert_blocked_and_audited(harness, c, ews, r, rule_prefix="upload.ipp", received_before=before)


async def test_json_body_with_base64_blob_over_limit_is_blocked(harness, session_client, ews):
    c = await session_client(ews)
    before = len(ews.state.received)
    blob = base64.b64encode(firmware_blob() * 20).decode()
    r = await c.request("POST", "/api/settings", json={"location": "x", "file": blob})
    await assert_blocked_and_audited(harness, c, ews, r, rule_prefix="upload.too_large", received_before=before)


async def test_small_json_with_embedded_base64_file_is_blocked(harness, session_client, ews):
    c = await session_client(ews)
    before = len(ews.state.received)
    blob = base64.b64encode(bytes(range(256)) * 20).decode()  # ~6.8 KB, under the size limit
    r = await c.request("POST", "/api/settings", json={"file": blob})
    await assert_blocked_and_audited(harness, c, ews, r, rule_prefix="upload.encoded_blob", received_before=before)


async def test_attachment_download_is_blocked(harness, session_client, ews):
    c = await session_client(ews)
    r = await c.request("GET", "/addressbook/entries.csv")
    d = await assert_blocked_and_audited(harness, c, ews, r, rule_prefix="download.attachment", received_before=len(ews.state.received))
    assert "alice@example.com" not in r.text
    assert d["direction"] == "response" and d["transfer_type"].startswith("text/csv")


async def test_attachment_with_uppercase_and_rfc5987_filename_is_blocked(harness, session_client, ews):
    c = await session_client(ews)
    r = await c.request("GET", "/settings/saved")
    await assert_blocked_and_audited(harness, c, ews, r, rule_prefix="download.attachment", received_before=len(ews.state.received))
    assert "snmp_community" not in r.text


async def test_csv_served_as_html_is_blocked(harness, session_client, ews):
    c = await session_client(ews)
    r = await c.request("GET", "/addressbook/view")
    await assert_blocked_and_audited(harness, c, ews, r, rule_prefix="download.table_export", received_before=len(ews.state.received))
    assert "alice@example.com" not in r.text


async def test_zip_backup_served_as_html_is_blocked(harness, session_client, ews):
    c = await session_client(ews)
    r = await c.request("GET", "/settings/archive.html")
    await assert_blocked_and_audited(harness, c, ews, r, rule_prefix="download.sniffed_zip", received_before=len(ews.state.received))
    assert b"PK\x03\x04" not in r.content


async def test_large_image_is_blocked(harness, session_client, ews):
    c = await session_client(ews)
    r = await c.request("GET", "/images/large.png")
    d = await assert_blocked_and_audited(harness, c, ews, r, rule_prefix="download.too_large", received_before=len(ews.state.received))
    assert d["transfer_size"] > 1024 * 1024


async def test_blocked_xhr_download_gets_json_403(harness, session_client, ews):
    c = await session_client(ews)
    r = await c.request("GET", "/addressbook/entries.csv", headers={"x-requested-with": "XMLHttpRequest"})
    assert r.status_code == 403
    assert r.json()["rule"] == "download.attachment"


async def test_small_logo_image_and_json_api_pass(harness, session_client, ews):
    c = await session_client(ews)
    logo = await c.request("GET", "/logo.png")
    assert logo.status_code == 200 and logo.content.startswith(b"\x89PNG")
    api = await c.request("GET", "/api/status")
    assert api.status_code == 200
    data = api.json()
    assert data["serial"] == ews.state.serial
    assert data["self"] == f"{c.origin}/api/status"
    assert ews.host not in api.text


async def test_form_post_and_small_json_reach_the_device(harness, session_client, ews):
    c = await session_client(ews)
    r = await c.request("POST", "/api/settings", json={"location": "Lab bench 7"})
    assert r.status_code == 200 and r.json()["location"] == "Lab bench 7"
    events = await harness.events(c.route.session_id)
    posts = [e for e in events if e.details.get("path") == "/api/settings"]
    assert posts and posts[-1].outcome == "success" and posts[-1].details["status"] == 200


async def test_every_request_is_audited_with_method_path_status_bytes(harness, session_client, ews):
    c = await session_client(ews)
    await c.request("GET", "/status")
    await c.request("GET", "/style.css")
    events = await harness.events(c.route.session_id)
    seen = {(e.details["method"], e.details["path"], e.details["status"]) for e in events if "status" in e.details}
    assert ("GET", "/status", 200) in seen and ("GET", "/style.css", 200) in seen
    for e in events:
        if e.details.get("path") == "/status":
            assert e.details["bytes_out"] > 0 and "token" not in json.dumps(e.details)


@pytest.mark.parametrize(
    ("method", "path", "kind"),
    [
        ("GET", "/hp/device/BackupRestore", "vendor.backup"),
        ("POST", "/hp/device/AddressBookImport", "vendor.address_book"),
        ("GET", "/wcd/abbr_export.xml", "vendor.backup"),
        ("POST", "/admin/", "vendor.driver_upload"),
    ],
)
async def test_known_vendor_transfer_endpoints_are_blocked_before_the_device(harness, session_client, ews, method, path, kind):
    c = await session_client(ews)
    seen = len(ews.state.seen_paths)
    query = {"op": "add-printer"} if path == "/admin/" else None
    r = await c.request(method, path, data={"a": "b"} if method == "POST" else None, params=query)
    await assert_blocked_and_audited(harness, c, ews, r, rule_prefix=kind, received_before=len(ews.state.received))
    assert path not in ews.state.seen_paths[seen:]


async def _chunks(total: int, piece: bytes) -> object:
    sent = 0
    while sent < total:
        yield piece
        sent += len(piece)


async def test_chunked_body_over_the_text_limit_is_blocked(harness, session_client, ews):
    c = await session_client(ews)
    before = len(ews.state.received)
    body = _chunks(40 * 1024, b"location=" + b"a" * 1015)  # 40 KB of harmless text, no length given
    r = await c.request("POST", "/api/settings", content=body, headers={"content-type": "text/plain"})
    assert r.request.headers.get("transfer-encoding") == "chunked"
    d = await assert_blocked_and_audited(harness, c, ews, r, rule_prefix="upload.too_large", received_before=before)
    assert d["transfer_size"] >= 40 * 1024


async def test_chunked_body_over_the_hard_limit_never_reaches_the_device(harness, session_client, ews):
    c = await session_client(ews)
    before = len(ews.state.received)
    limit = harness.proxy.deps.limits.hard_body_limit
    body = _chunks(limit + 1024 * 1024, b"\x00" * 65536)
    try:
        r = await c.request("POST", "/api/settings", content=body, headers={"content-type": "text/plain"})
        assert r.status_code in (403, 413)
    except (httpx.RemoteProtocolError, httpx.WriteError, httpx.ReadError):
        pass  # the proxy may cut the connection mid-upload
    assert len(ews.state.received) == before, "the transfer reached the device"
    ok = await c.request("GET", "/")
    assert ok.status_code == 200 and "Device home" in ok.text
    blocked = [e for e in await harness.events(c.route.session_id) if e.type == "dwa.transfer_blocked"]
    assert len(blocked) == 1 and blocked[0].outcome == "blocked", blocked
    assert blocked[0].details["path"] == "/api/settings" and blocked[0].details["rule"] == "upload.too_large"


async def test_body_declared_over_every_allowed_size_is_refused_unread(harness, session_client, ews):
    c = await session_client(ews)
    before = len(ews.state.received)
    r = await c.request("POST", "/api/settings", content=b"a" * (200 * 1024), headers={"content-type": "text/plain"})
    d = await assert_blocked_and_audited(harness, c, ews, r, rule_prefix="upload.too_large", received_before=before)
    assert d["transfer_size"] == 200 * 1024 and "every allowed size" in d["reason"]


async def test_upload_without_the_session_cookie_is_refused_as_not_signed_in(harness, session_client, ews):
    c = await session_client(ews)
    before = len(ews.state.received)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{harness.proxy.port}") as stranger:
        # a body within the proxy's linger allowance: the client that insists on sending it all
        # still reads the answer (larger ones: tests/proxy/test_abuse.py)
        r = await stranger.post("/api/settings", content=_chunks(128 * 1024, b"a" * 4096),
                                headers={"host": c.netloc, "content-type": "text/plain"})
    assert r.status_code == 401 and "Not signed in" in r.text
    assert len(ews.state.received) == before
