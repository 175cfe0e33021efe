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

Pure functions on mitmproxy's request (no I/O).
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from collections.abc import Callable

from mitmproxy import http

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
