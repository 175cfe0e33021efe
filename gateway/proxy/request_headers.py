"""Request headers the browser (not a page script) sets, normalised before they are counted.

A browser sets ``Referer``, ``Origin``, ``Sec-Fetch-*`` and ``Sec-WebSocket-Key`` itself, but a
client holding the session cookie (curl) sets them to anything (issue 21 round 4, f21d). So
the proxy passes on only what a browser on this session would send, and everything that is
left is counted against the session budget like any other header (``budgets.custom_headers``):

* ``Referer``: kept only as a page this tally requested (``SessionLedger.pages``, exactly, on
  the session's own origin); another address on the session origin is reduced to the origin
  (``<origin>/``, what a strict referrer policy sends); a foreign one is dropped.
* ``Origin``: kept only as the session's own origin; anything else (``null``, a foreign site,
  data) is dropped.
* ``Sec-Fetch-Site``/``-Mode``/``-Dest``/``-User``: kept only with a value the Fetch standard
  defines (the proxy's own decisions read them too); anything else is dropped.
* ``Priority``: kept only as RFC 9218 urgency (``u=0``..``u=7``) and ``i``; else dropped.
* ``Sec-WebSocket-Key``: replaced by a key the proxy draws (16 random bytes); the device's
  ``Sec-WebSocket-Accept`` is answered to the browser for the browser's own key
  (``websocket_accept``). The browser's key never reaches the device.

First of all (``canonical_fields``) the fields whose value the budget does not count (``Host``,
``Cookie``, ``Content-Length``, ``Sec-WebSocket-Key``: the proxy sets or derives them) lose
everything else the sender chose about them: mitmproxy keeps a field's name as sent (letter
case) and its position when a value is rewritten, and both reached the device (tester zc F1:
5 bytes a request for 1 budget byte). So ``Host`` goes first, ``Cookie`` (every cookie field's
``name=value`` pairs joined by ``"; "``), ``Content-Length`` and ``Sec-WebSocket-Key`` last, in
that order and with those names; ``Content-Length`` only when the request has a body or its
method has one (POST, PUT, PATCH: the body's length) and no ``Transfer-Encoding``; the
WebSocket handshake's fields only on a WebSocket upgrade (``Upgrade: websocket``). The names of
the other fields normalised here get their canonical case too (the counted ones' names are
part of the request's shape either way: ``budgets.request_user_data``).

Pure functions on mitmproxy's request (no I/O).
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from collections.abc import Callable

from mitmproxy import http

from gateway.proxy.budgets import cookie_pairs_of

SEC_FETCH_VALUES: dict[str, frozenset[str]] = {
    "sec-fetch-site": frozenset({"same-origin", "same-site", "cross-site", "none"}),
    "sec-fetch-mode": frozenset({"navigate", "cors", "no-cors", "same-origin", "websocket"}),
    "sec-fetch-dest": frozenset({
        "audio", "audioworklet", "document", "embed", "empty", "fencedframe", "font", "frame", "iframe",
        "image", "json", "manifest", "object", "paintworklet", "report", "script", "serviceworker",
        "sharedworker", "style", "track", "video", "webidentity", "worker", "xslt",
    }),
    "sec-fetch-user": frozenset({"?1"}),
    "sec-fetch-storage-access": frozenset({"none", "inactive", "active"}),
}
_SEC_FETCH = tuple((name, name.encode(), allowed) for name, allowed in SEC_FETCH_VALUES.items())
_NORMALISED = frozenset({b"origin", b"referer", b"priority", b"sec-websocket-key", *(b for _, b, _ in _SEC_FETCH)})
_PRIORITY = re.compile(r"(?:u=[0-7]|i|i=\?[01])(?:\s*,\s*(?:u=[0-7]|i|i=\?[01])){0,1}")
WS_KEY = "sec-websocket-key"
WS_ACCEPT = "sec-websocket-accept"
BROWSER_WS_KEY = "printgate.browser_ws_key"  # flow.metadata: the browser's own key
_WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def field_value(fields: tuple[tuple[bytes, bytes], ...], name: bytes) -> str | None:
    """What mitmproxy's ``headers.get(name)`` answers for header fields ``fields`` (every field
    named ``name``, a lower-case byte string, folded with ", "; None when there is none), in one
    pass without its per-field key conversions (this runs in several addons on every request)."""
    found = [value for key, value in fields if key.lower() == name]
    if not found:
        return None
    return ", ".join([value.decode("utf-8", "surrogateescape") for value in found])


def has_field(fields: tuple[tuple[bytes, bytes], ...], name: bytes) -> bool:
    """``name in headers`` (``name`` a lower-case byte string), in one pass over the raw fields."""
    for key, _ in fields:
        if key.lower() == name:
            return True
    return False


_CANONICAL_NAMES: dict[bytes, bytes] = {
    name.lower(): name for name in (
        b"Host", b"Cookie", b"Content-Length", b"Sec-WebSocket-Key", b"Referer", b"Origin", b"Priority",
        b"Sec-Fetch-Site", b"Sec-Fetch-Mode", b"Sec-Fetch-Dest", b"Sec-Fetch-User", b"Sec-Fetch-Storage-Access",
        b"Sec-WebSocket-Version", b"Sec-WebSocket-Extensions", b"Sec-WebSocket-Protocol",
    )
}
_PLACED = frozenset({b"host", b"cookie", b"content-length", b"sec-websocket-key"})  # moved to fixed places
_WS_HANDSHAKE = frozenset({b"sec-websocket-key", b"sec-websocket-version", b"sec-websocket-extensions",
                           b"sec-websocket-protocol"})
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def canonical_fields(req: http.Request) -> None:
    """Rewrite ``req``'s uncounted fields at fixed places with fixed names (see the module's
    docstring), in one pass over the fields."""
    host: bytes | None = None
    cookies: list[bytes] = []
    ws_key: bytes | None = None
    chunked = websocket = False
    middle: list[tuple[bytes, bytes]] = []
    for name, value in req.headers.fields:
        lower = name.lower()
        if lower in _PLACED:
            if lower == b"host":
                host = value if host is None else host  # RequestLineGuard let exactly one through
            elif lower == b"cookie":
                cookies.append(value)
            elif lower == b"sec-websocket-key" and ws_key is None:
                ws_key = value
            continue
        if lower == b"transfer-encoding":
            chunked = True
        elif lower == b"upgrade" and value.strip().lower() == b"websocket":
            websocket = True
        middle.append((_CANONICAL_NAMES.get(lower, name), value))
    if not websocket:
        middle = [(name, value) for name, value in middle if name.lower() not in _WS_HANDSHAKE]
    fields = [(b"Host", host)] if host is not None else []
    fields += middle
    if cookies:
        joined = b"; ".join([key + b"=" + val for value in cookies for key, val in cookie_pairs_of(value)])
        if joined:
            fields.append((b"Cookie", joined))
    body = req.raw_content or b""
    if not chunked and (body or req.method in _BODY_METHODS):
        fields.append((b"Content-Length", str(len(body)).encode()))
    if websocket and ws_key is not None:
        fields.append((b"Sec-WebSocket-Key", ws_key))
    canonical = tuple(fields)
    if canonical != req.headers.fields:  # exact: a browser's request is often canonical already
        req.headers.fields = canonical


def _keep_only(headers: http.Headers, name: str, values: list[str], ok: Callable[[str], bool]) -> None:
    """Keep the first of ``values`` (the fields named ``name``, as ``get_all`` gives them) that
    is ``ok``, and none if none is."""
    kept = [v for v in values if ok(v)][:1]  # a browser sends each of these once
    if kept != values:
        headers.set_all(name, kept)


def referer_for(value: str, session_origin: str, is_page: Callable[[str], bool]) -> str | None:
    """What the device gets for a ``Referer`` of ``value``: the value itself if it is a page this
    tally requested, the session origin (``<origin>/``) for another address on it, else None."""
    if value != session_origin and not value.startswith(session_origin + "/"):
        return None
    if is_page(value):
        return value
    return session_origin + "/"


def normalise(req: http.Request, session_origin: str | None, is_page: Callable[[str], bool],
              metadata: dict[str, object]) -> None:
    """Normalise ``req``'s browser-set headers in place (see the module's docstring)."""
    canonical_fields(req)
    headers = req.headers
    # one pass over the fields: the values of the ones normalised here, as ``get_all`` gives
    # them (each step below rewrites only its own name: the others' values stay as read)
    present: dict[bytes, list[str]] = {}
    for field, value in headers.fields:
        lower = field.lower()
        if lower in _NORMALISED:
            present.setdefault(lower, []).append(value.decode("utf-8", "surrogateescape"))
    if not present:  # exact: every step below needs one of these fields
        return
    if b"origin" in present:
        _keep_only(headers, "origin", present[b"origin"], lambda v: session_origin is not None and v == session_origin)
    if b"referer" in present:
        values = present[b"referer"]
        new = referer_for(values[0], session_origin, is_page) if session_origin is not None else None
        if [new] != values:
            headers.set_all("referer", [new] if new is not None else [])
    for name, bname, allowed in _SEC_FETCH:
        if bname in present:
            _keep_only(headers, name, present[bname], allowed.__contains__)
    if b"priority" in present:
        _keep_only(headers, "priority", present[b"priority"], lambda v: _PRIORITY.fullmatch(v.strip()) is not None)
    if b"sec-websocket-key" in present:
        metadata[BROWSER_WS_KEY] = present[b"sec-websocket-key"][0]
        headers[WS_KEY] = base64.b64encode(secrets.token_bytes(16)).decode()


def websocket_accept(browser_key: str) -> str:
    """RFC 6455's ``Sec-WebSocket-Accept`` for ``browser_key``."""
    digest = hashlib.sha1(browser_key.encode("utf-8", "surrogateescape") + _WS_GUID, usedforsecurity=False)
    return base64.b64encode(digest.digest()).decode()
