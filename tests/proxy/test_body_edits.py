"""Bodies are edited as bytes when the charset allows it, decoded when it does not (no leak either way)."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime, timedelta

import pytest
from mitmproxy import http
from mitmproxy.test import tflow

from gateway.proxy.addons.banner import BANNER_ID, Banner
from gateway.proxy.addons.rewrite_urls import RewriteUrls
from gateway.proxy.addons.session_auth import COOKIE_KEY
from gateway.proxy.charset import editable_as_bytes
from gateway.proxy.decision import ROUTE_KEY
from gateway.proxy.deps import ProxyDeps, PublicAddress
from gateway.proxy.routes import RouteTable, SessionRoute

DEVICE = "127.0.20.15:8081"
SESSION_NETLOC = "s-abc.dwa.localhost:8480"


def _route(label: str = "Büro-Drucker") -> SessionRoute:
    return SessionRoute(
        "abc", "s-abc.dwa.localhost", "127.0.0.1", 8081, f"http://{DEVICE}", "http", None,
        datetime.now(UTC) + timedelta(hours=1), 600, label, "Kunde GmbH",
    )


def _flow(body: bytes, headers: dict[str, str], route: SessionRoute) -> http.HTTPFlow:
    f = tflow.tflow()
    f.request.headers["sec-fetch-dest"] = "document"
    f.response = http.Response.make(200, body, headers)
    f.metadata[ROUTE_KEY] = route
    f.metadata[COOKIE_KEY] = "browser-cookie"
    return f


async def _noop(_sid: str) -> None:
    return None


def _pipeline() -> tuple[RewriteUrls, Banner]:
    routes = RouteTable()
    deps = ProxyDeps(routes=routes, audit=None, dwa_domain="dwa.localhost",  # type: ignore[arg-type]
                     on_end_request=_noop, csrf_key=b"k" * 32, public=PublicAddress("http", 8480))
    return RewriteUrls(deps.public), Banner(deps)


@pytest.mark.parametrize(
    ("content_type", "body", "expected"),
    [
        ("text/html", b"<html>", True),
        ("text/html; charset=iso-8859-1", b"<html>", True),
        ("text/html", b"<meta charset=shift_jis><html>", True),
        ("text/html; charset=utf-16", b"<\x00h\x00", False),
        ("text/html", b"\xff\xfe<\x00", False),
        ("text/html; charset=iso-2022-jp", b"<html>", False),
        ("text/css; charset=cp037", b"", False),
        ("text/html; charset=no-such-charset", b"<html>", False),
    ],
)
def test_only_ascii_compatible_stateless_charsets_are_edited_as_bytes(
    content_type: str, body: bytes, expected: bool
) -> None:
    assert editable_as_bytes(content_type, body) is expected


def test_utf16_page_is_rewritten_and_keeps_its_charset() -> None:
    rewrite, banner = _pipeline()
    page = f"<html><body><a href='http://{DEVICE}/x'>x</a></body></html>"
    f = _flow(page.encode("utf-16"), {"content-type": "text/html; charset=utf-16"}, _route())
    rewrite.response(f)
    banner.response(f)
    assert f.response is not None
    text = (f.response.content or b"").decode("utf-16")
    assert DEVICE not in text and f"http://{SESSION_NETLOC}/x" in text
    assert BANNER_ID in text and "Büro-Drucker" in text


def test_latin1_gzip_page_is_rewritten_with_banner_as_ascii_bytes() -> None:
    rewrite, banner = _pipeline()
    page = f"<html><body><p>Gerät \xfc</p><img src='//{DEVICE}/a.png'></BODY ></html>".encode("latin-1")
    f = _flow(b"", {"content-type": "text/html; charset=iso-8859-1", "content-encoding": "gzip"}, _route())
    assert f.response is not None
    f.response.content = page  # stored gzip-compressed, as a device would send it
    assert f.response.raw_content != page
    rewrite.response(f)
    banner.response(f)
    assert f.response is not None
    assert f.response.headers["content-encoding"] == "gzip"
    body = gzip.decompress(f.response.raw_content or b"")
    assert DEVICE.encode() not in body
    assert f"//{SESSION_NETLOC}/a.png".encode() in body
    assert "Gerät ü".encode("latin-1") in body  # untouched bytes, same charset
    assert b"B&#252;ro-Drucker" in body  # the label as a character reference
    assert body.index(BANNER_ID.encode()) < body.index(b"</BODY >")


def test_banner_is_not_inserted_twice() -> None:
    _rewrite, banner = _pipeline()
    f = _flow(b"<html><body>x</body></html>", {"content-type": "text/html"}, _route())
    banner.response(f)
    banner.response(f)
    assert f.response is not None
    assert (f.response.content or b"").count(BANNER_ID.encode()) == 1


def test_page_that_does_not_name_the_device_is_left_as_is() -> None:
    rewrite, _banner = _pipeline()
    raw = b"<html><body>no address here</body></html>"
    f = _flow(raw, {"content-type": "text/html"}, _route())
    rewrite.response(f)
    assert f.response is not None and f.response.raw_content is raw
