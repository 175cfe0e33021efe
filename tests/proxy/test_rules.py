"""Rule tables alone: vendor endpoint file parsing, upload/download allowlists on hand-made messages."""

from __future__ import annotations

import gzip

import pytest
from mitmproxy import http

from gateway.proxy.addons.block_downloads import BlockDownloads
from gateway.proxy.addons.block_uploads import BlockUploads
from gateway.proxy.limits import ProxyLimits
from gateway.proxy.vendor_profiles import load_vendor_endpoints, parse_vendor_endpoints
from lab.ews.assets import backup_zip, logo_png
from printgate.errors import ConfigError

LIMITS = ProxyLimits()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[endpoint]]\nvendor='x'\nkind='nonsense'\npath='^/a'", "'kind' must be one of"),
        ("[[endpoint]]\nvendor='x'\nkind='backup'\npath='(unclosed'", "bad regular expression"),
        ("[[endpoint]]\nvendor='x'\nkind='backup'", "'path' must be"),
        ("[[endpoint]]\nkind='backup'\npath='^/a'", "'vendor' must be"),
        ("[[endpoint]]\nvendor='x'\nkind='backup'\npath='^/a'\nmethods=3", "'methods' must be"),
        ("[[endpoint]]\nvendor='x'\nkind='backup'\npath='^/a'\ncolour='red'", "unknown keys"),
        ("endpoint = 3", "array of tables"),
        ("not toml [", "not valid TOML"),
    ],
)
def test_bad_vendor_endpoint_files_are_refused_at_load(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_vendor_endpoints(text)


def test_shipped_vendor_file_loads_and_matches_known_endpoints():
    table = load_vendor_endpoints()
    assert len(table.endpoints) >= 15
    assert table.match("POST", "/hp/device/FirmwareUpgrade") is not None
    assert table.match("GET", "/wcd/abbr_export.xml") is not None
    assert table.match("POST", "/admin/", "op=add-printer") is not None
    assert table.match("GET", "/admin/", "") is None
    assert table.match("GET", "/css/important.css") is None
    assert table.match("GET", "/status") is None


def req(method: str = "POST", body: bytes = b"", ctype: str | None = None, **headers: str) -> http.Request:
    h = {"content-type": ctype} if ctype else {}
    r = http.Request.make(method, "http://dev/x", body, h | headers)
    return r


@pytest.mark.parametrize(
    ("request_", "rule"),
    [
        (req("GET"), None),
        (req("OPTIONS"), None),
        (req("POST", b"a=1&b=2", "application/x-www-form-urlencoded"), None),
        (req("POST", b'{"a":1}', "application/json"), None),
        (req("POST", b"<a/>", "application/soap+xml"), None),
        (req("POST", b"hello", "text/plain"), None),
        (req("PUT", b"x", "text/plain"), "upload.method"),
        (req("GET", b"x=1", "text/plain"), "upload.body_on_safe_method"),
        (req("POST", b"x" * 70000, "application/x-www-form-urlencoded"), "upload.too_large"),
        (req("POST", b"x" * 9000, "text/plain"), "upload.too_large"),
        (req("POST", b"\x00\x01\x02", "application/octet-stream"), "upload.binary_body"),
        (req("POST", b"abc", "application/octet-stream"), "upload.type"),
        (req("POST", b"%PDF-1.7 ...", "text/plain"), "upload.sniffed_pdf"),
        (req("POST", gzip.compress(b"a=1"), "application/x-www-form-urlencoded"), "upload.sniffed_gzip"),
        (req("POST", b"a=1", "application/x-www-form-urlencoded", **{"content-encoding": "gzip"}), "upload.encoded_body"),
        (req("POST", b"\x01\x01\x00\x02rest", "text/plain"), "upload.ipp"),
        (req("POST", b"x=" + b"A" * 5000, "application/x-www-form-urlencoded"), "upload.encoded_blob"),
    ],
)
def test_upload_allowlist(request_, rule):
    verdict = BlockUploads(LIMITS).check(request_)
    assert (verdict[0] if verdict else None) == rule


def multipart(parts: list[tuple[str, str]]) -> http.Request:
    boundary = "XyZ"
    body = b"".join(f"--{boundary}\r\n{h}\r\n\r\n{v}\r\n".encode() for h, v in parts) + f"--{boundary}--\r\n".encode()
    return req("POST", body, f"multipart/form-data; boundary={boundary}")


@pytest.mark.parametrize(
    ("parts", "rule"),
    [
        ([('Content-Disposition: form-data; name="a"', "1")], None),
        ([('Content-Disposition: form-data; name="f"; filename="a.txt"', "1")], "upload.multipart_file"),
        ([('Content-Disposition: form-data; name="f"; FILENAME*=UTF-8\'\'a.bin', "1")], "upload.multipart_file"),
        ([('Content-Disposition: form-data; name="f"\r\nContent-Type: application/octet-stream', "1")], "upload.multipart_file"),
        ([('Content-Disposition: form-data; name="f"\r\nContent-Type: text/plain', "PK\x03\x04zz")], "upload.multipart_file"),
    ],
)
def test_multipart_file_parts_are_blocked_whatever_their_disguise(parts, rule):
    verdict = BlockUploads(LIMITS).check(multipart(parts))
    assert (verdict[0] if verdict else None) == rule


def resp(body: bytes, ctype: str | None, status: int = 200, **headers: str) -> http.Response:
    h = {"content-type": ctype} if ctype else {}
    return http.Response.make(status, body, h | headers)


@pytest.mark.parametrize(
    ("response", "rule"),
    [
        (resp(b"<html></html>", "text/html"), None),
        (resp(b"body{}", "text/css"), None),
        (resp(b"var a=1;\nvar b=2;\nvar c=3;\n", "application/javascript"), None),
        (resp(logo_png(), "image/png"), None),
        (resp(b'{"a":1}', "application/json"), None),
        (resp(b"", "application/octet-stream", 204), None),
        (resp(b"<html></html>", "text/html", **{"content-disposition": "attachment"}), "download.attachment"),
        (resp(b"x", "text/html", **{"content-disposition": "  Attachment ; filename=x"}), "download.attachment"),
        (resp(b"x", "text/html", **{"content-disposition": "inline; filename=a.pdf"}), "download.attachment"),
        (resp(b"x", "text/html", **{"content-disposition": "form-data"}), "download.attachment"),
        (resp(backup_zip("d", "s"), "text/html"), "download.sniffed_zip"),
        (resp(b"%PDF-1.4\n...", "image/png"), "download.sniffed_pdf"),
        (resp(b"a,b\n1,2\n3,4\n", "text/csv"), "download.type"),
        (resp(b"a;b\n1;2\n3;4\n", "text/html"), "download.table_export"),
        (resp(b"\x00\x01binary", "application/octet-stream"), "download.binary"),
        (resp(b"plain words", "application/octet-stream"), "download.type"),
        (resp(b"GIF", "image/gif"), "download.not_an_image"),
        (resp(b"x" * 600_000, "application/json"), "download.too_large"),
        (resp(b"MZ\x90\x00exe", "text/plain"), "download.sniffed_exe"),
    ],
)
def test_download_allowlist(response, rule):
    verdict = BlockDownloads(LIMITS).check(req("GET"), response)
    assert (verdict[0] if verdict else None) == rule


def test_gzip_encoded_zip_is_still_sniffed():
    r = resp(backup_zip("d", "s"), "text/html")
    r.encode("gzip")
    verdict = BlockDownloads(LIMITS).check(req("GET"), r)
    assert verdict and verdict[0] == "download.sniffed_zip"
