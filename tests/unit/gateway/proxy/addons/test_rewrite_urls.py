"""The rewriter alone: examples of every address form, and hypothesis fuzzing (no crash, no leak)."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mitmproxy import http
from mitmproxy.test import tflow

from gateway.proxy.addons.rewrite_urls import RewriteUrls
from gateway.proxy.decision import ROUTE_KEY
from gateway.proxy.deps import PublicAddress
from gateway.proxy.rewriter import Origin, UrlRewriter
from gateway.proxy.routes import SessionRoute
from printgate.errors import ConfigError

DEVICE = "http://127.0.20.15:8081"
SESSION = "http://s-abc.dwa.localhost:8480"
DEVICE_TOKEN = re.compile(r"(?<![0-9.])127\.0\.20\.15(?![0-9])(?!\.[0-9])")


@pytest.fixture(scope="module")
def rw() -> UrlRewriter:
    return UrlRewriter(DEVICE, SESSION)


@pytest.mark.parametrize(
    ("given_text", "expected"),
    [
        ('<a href="http://127.0.20.15:8081/x">', '<a href="http://s-abc.dwa.localhost:8480/x">'),
        ("<img src='//127.0.20.15:8081/a.png'>", "<img src='//s-abc.dwa.localhost:8480/a.png'>"),
        ("new WebSocket('ws://127.0.20.15:8081/ws')", "new WebSocket('ws://s-abc.dwa.localhost:8480/ws')"),
        ('{"u":"http:\\/\\/127.0.20.15:8081\\/x"}', '{"u":"http:\\/\\/s-abc.dwa.localhost:8480\\/x"}'),
        ("next=http%3A%2F%2F127.0.20.15%3A8081%2Fx", "next=http%3A%2F%2Fs-abc.dwa.localhost%3A8480%2Fx"),
        ("var h = '127.0.20.15:8081';", "var h = 's-abc.dwa.localhost:8480';"),
        ("https://127.0.20.15/secure", "http://s-abc.dwa.localhost:8480/secure"),
        ("srcset='http://127.0.20.15:8081/a 1x, http://127.0.20.15:8081/b 2x'",
         "srcset='http://s-abc.dwa.localhost:8480/a 1x, http://s-abc.dwa.localhost:8480/b 2x'"),
        ("background:url(http://127.0.20.15:8081/bg.png)", "background:url(http://s-abc.dwa.localhost:8480/bg.png)"),
        ("0;url=http://127.0.20.15:8081/next", "0;url=http://s-abc.dwa.localhost:8480/next"),
        ("127.0.20.150 and 10.127.0.20.15", "127.0.20.150 and 10.127.0.20.15"),  # other addresses untouched
    ],
)
def test_device_address_forms_are_rewritten(rw, given_text, expected):
    assert rw.to_browser(given_text) == expected


def test_wss_used_when_session_is_https():
    r = UrlRewriter(DEVICE, "https://s-abc.dwa.example")
    assert r.to_browser("ws://127.0.20.15:8081/ws") == "wss://s-abc.dwa.example/ws"


def test_session_origin_is_mapped_back_to_device(rw):
    assert rw.to_device("http://s-abc.dwa.localhost:8480/login") == "http://127.0.20.15:8081/login"
    assert rw.to_device("x=http%3A%2F%2Fs-abc.dwa.localhost%3A8480%2F") == "x=http%3A%2F%2F127.0.20.15%3A8081%2F"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("sid=1; Domain=127.0.20.15; Path=/; Secure; HttpOnly", "sid=1; Path=/; HttpOnly"),
        ("sid=1; SameSite=None; Secure", "sid=1; SameSite=Lax"),
        ("printgate_dwa=evil; Path=/", None),  # the device may not overwrite the proxy's cookie
        ("garbage", None),
    ],
)
def test_set_cookie_made_host_only(rw, header, expected):
    assert rw.set_cookie_to_browser(header, reserved_names=frozenset({"printgate_dwa"})) == expected


@pytest.mark.parametrize("bad", ["ftp://x", "127.0.0.1:80", "http://", ""])
def test_bad_origins_are_config_errors(bad):
    with pytest.raises(ConfigError):
        Origin.parse(bad)


# --- fuzzing -------------------------------------------------------------------
ADDRESS_FORMS = st.sampled_from([
    "http://127.0.20.15:8081", "https://127.0.20.15", "//127.0.20.15:8081", "127.0.20.15:8081",
    "127.0.20.15", "ws://127.0.20.15:8081", "http:\\/\\/127.0.20.15:8081", "http%3A%2F%2F127.0.20.15%3A8081",
    "HTTP://127.0.20.15:8081", "127.0.20.15%3A8081",
])
FILLER = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=30)
TEMPLATES = st.sampled_from([
    "<a href='{a}/p?q={f}'>{f}</a>", "<img srcset=\"{a}/i.png 1x,{a}/j.png 2x\">", "url({a}/bg.png)",
    "<meta http-equiv=refresh content='0;url={a}/'>", "var x=\"{a}\";{f}", '{{"self":"{a}/api"}}',
    "<div style=\"background:url('{a}/x')\">{f}</div>", "{f}{a}{f}", "@import '{a}/c.css';",
])


@st.composite
def documents(draw: st.DrawFn) -> str:
    parts = [
        draw(TEMPLATES).format(a=draw(ADDRESS_FORMS), f=draw(FILLER))
        for _ in range(draw(st.integers(1, 6)))
    ]
    return "".join(parts)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents())
def test_fuzz_rewritten_documents_never_leak_device_address(doc):
    rw = UrlRewriter(DEVICE, SESSION)
    out = rw.to_browser(doc)
    assert not DEVICE_TOKEN.search(out), out


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_fuzz_arbitrary_text_never_crashes_and_never_keeps_device_token(text):
    rw = UrlRewriter(DEVICE, SESSION)
    out = rw.to_browser(text)
    assert isinstance(out, str)
    assert not DEVICE_TOKEN.search(out)
    assert rw.to_device(out) is not None


def _route() -> SessionRoute:
    from datetime import UTC, datetime, timedelta

    return SessionRoute(
        "abc", "s-abc.dwa.localhost", "127.0.0.1", 1, DEVICE, "http", None,
        datetime.now(UTC) + timedelta(minutes=5), 60, "dev", "cust",
    )


@settings(max_examples=150, deadline=None)
@given(
    doc=documents(),
    encoding=st.sampled_from(["identity", "gzip", "deflate", "br"]),
    ctype=st.sampled_from(["text/html; charset=utf-8", "text/css", "application/javascript",
                           "application/json", "text/html; charset=iso-8859-1", "application/xml"]),
    location=ADDRESS_FORMS,
    cookie=st.sampled_from(["a=1; Domain=127.0.20.15; Path=/", "b=2; Secure", "c=3"]),
)
def test_fuzz_addon_responses_never_leak_and_keep_encoding(doc, encoding, ctype, location, cookie):
    addon = RewriteUrls(PublicAddress("http", 8480))
    flow = tflow.tflow(resp=True)
    flow.metadata[ROUTE_KEY] = _route()
    resp = http.Response.make(200, b"", {"content-type": ctype, "location": location + "/next", "set-cookie": cookie})
    resp.headers["refresh"] = f"5;url={location}/r"
    charset = "iso-8859-1" if "8859" in ctype else "utf-8"
    body = doc.encode(charset, "replace")
    resp.content = body
    if encoding != "identity":
        resp.encode(encoding)
    flow.response = resp
    addon.response(flow)
    assert flow.response.headers.get("content-encoding", "identity") == encoding
    decoded = flow.response.get_content(strict=False) or b""
    assert not DEVICE_TOKEN.search(decoded.decode(charset, "replace"))
    for name in ("location", "refresh", "set-cookie"):
        assert not DEVICE_TOKEN.search(flow.response.headers.get(name, "")), name
