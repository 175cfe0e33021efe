"""request_headers: the one-pass look-ups answer as mitmproxy's ``headers.get`` and ``in`` do, and
``normalise`` (one pass over the fields) rewrites each browser-set header as before."""

from __future__ import annotations

from mitmproxy import http

from gateway.proxy import request_headers
from tests.unit.gateway.proxy.addons.flows import flow

ORIGIN = "http://s-abc.dwa.localhost"


def _request(fields: list[tuple[str, str]]) -> http.Request:
    req = flow("GET", "/").request
    for name, value in fields:
        req.headers.add(name, value)
    return req


def test_field_value_and_has_field_answer_as_headers_get_and_in() -> None:
    req = _request([("Content-Type", "text/plain"), ("X-A", "1"), ("x-a", "2"), ("X-Empty", ""),
                    ("X-Bin", "\udcff\udcfe")])
    for name in ("content-type", "x-a", "x-empty", "x-bin", "host", "missing"):
        assert request_headers.field_value(req.headers.fields, name.encode()) == req.headers.get(name)
        assert request_headers.has_field(req.headers.fields, name.encode()) == (name in req.headers)


def test_normalise_rewrites_every_browser_set_header_in_one_pass() -> None:
    req = _request([("Origin", "null"), ("origin", ORIGIN), ("Sec-Fetch-Mode", "bogus"), ("sec-fetch-mode", "cors"),
                    ("Sec-Fetch-Dest", "empty"), ("Priority", "u=9"), ("Referer", ORIGIN + "/seen.html"),
                    ("Sec-WebSocket-Key", "browserkey=="), ("Upgrade", "websocket"), ("Accept", "*/*")])
    metadata: dict[str, object] = {}
    request_headers.normalise(req, ORIGIN, lambda url: url.endswith("/seen.html"), metadata)
    assert req.headers.get_all("origin") == [ORIGIN]
    assert req.headers.get_all("sec-fetch-mode") == ["cors"]
    assert req.headers.get_all("sec-fetch-dest") == ["empty"]
    assert req.headers.get_all("priority") == []
    assert req.headers.get_all("referer") == [ORIGIN + "/seen.html"]
    assert metadata[request_headers.BROWSER_WS_KEY] == "browserkey=="
    assert req.headers["sec-websocket-key"] != "browserkey=="
    assert req.headers["accept"] == "*/*"


def test_normalise_leaves_a_request_without_those_headers_as_it_was() -> None:
    req = _request([("Accept", "*/*")])
    request_headers.canonical_fields(req)  # ``Host`` with that name, first (tester zc F1)
    before = req.headers.fields
    request_headers.normalise(req, ORIGIN, lambda url: False, {})
    assert req.headers.fields is before


def test_canonical_fields_fix_name_case_and_place_of_the_uncounted_fields() -> None:
    """Tester zc F1: ``Host``, ``Cookie``, ``Content-Length`` and the WebSocket key keep nothing
    of the sender's letter case or order; no length on a GET without a body, no key without an
    upgrade."""
    req = _request([("X-A", "1"), ("cOOkie", "a=1;b=2"), ("content-LENGTH", "0"), ("sec-websocket-KEY", "k"),
                    ("cookie", "c"), ("rEfErEr", ORIGIN + "/")])
    req.headers.fields = (*((n, v) for n, v in req.headers.fields if n.lower() != b"host"), (b"hOsT", b"h"))
    request_headers.canonical_fields(req)
    assert req.headers.fields == ((b"Host", b"h"), (b"X-A", b"1"), (b"Referer", ORIGIN.encode() + b"/"),
                                  (b"Cookie", b"a=1; b=2; c="))
    post = flow("POST", "/").request
    post.headers.add("CONTENT-length", "0")
    post.headers.add("Upgrade", "websocket")
    post.headers.add("SEC-websocket-key", "k")
    request_headers.canonical_fields(post)
    assert post.headers.fields[-2:] == ((b"Content-Length", b"0"), (b"Sec-WebSocket-Key", b"k"))
