"""Did the technician's own request carry the stored device password?

The proxy masks the stored secret in device answers. If it also masked the technician's own
text echoed back by the device (a "Location" field, a JSON setting, a WebSocket echo), the mask
would tell the technician whether a guess is the password (issue 19 follow-up). So the proxy
first asks whether the browser sent the secret, in any form a device may decode: raw, URL- or
form-decoded, HTML-unescaped, JSON-unescaped, in the path, query, headers, cookies or body, in
any letter case, and also split over adjacent form/query/JSON values the device may print side
by side. A request that did is not masked: the technician already knows what they typed.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Iterator
from urllib.parse import parse_qsl, unquote, unquote_plus

from mitmproxy import http

_JSON_DEPTH = 64


def _decoded(text: str) -> Iterator[str]:
    yield text
    yield unquote(text)
    yield unquote_plus(text)
    yield html.unescape(text)
    yield html.unescape(unquote_plus(text))


def _form_pairs(text: str) -> list[tuple[str, str]]:
    try:
        return parse_qsl(text, keep_blank_values=True)
    except ValueError:
        return []


def _json_pairs(value: object, depth: int = 0) -> Iterator[tuple[str, str]]:
    """(key, value) of every leaf of a JSON document, unescaped; a list's items have no key."""
    if depth > _JSON_DEPTH:
        return
    if isinstance(value, dict):
        for k, v in value.items():
            if isinstance(v, dict | list):
                yield str(k), ""
                yield from _json_pairs(v, depth + 1)
            else:
                yield str(k), "" if v is None else str(v)
    elif isinstance(value, list):
        for v in value:
            if isinstance(v, dict | list):
                yield from _json_pairs(v, depth + 1)
            else:
                yield "", "" if v is None else str(v)
    elif value is not None:
        yield "", str(value)


def json_pairs(text: str) -> list[tuple[str, str]]:
    """The JSON document's leaves as (key, value); none when it is not JSON."""
    try:
        return list(_json_pairs(json.loads(text)))
    except (ValueError, RecursionError):
        return []


def text_carries(text: str, password: str) -> bool:
    """``text`` (one request part or one WebSocket frame) holds the password in a decodable form."""
    if not password:
        return False
    needle = password.casefold()
    for form in _decoded(text):
        if needle in form.casefold():
            return True
    for pairs in (_form_pairs(text), json_pairs(text)):
        if any(needle in k.casefold() or needle in v.casefold() for k, v in pairs):
            return True
        if pairs and needle in "".join(v for _, v in pairs).casefold():
            return True  # split over adjacent values the device may print together
    return False


def _parts(request: http.Request) -> Iterable[str]:
    yield request.path
    for name, value in request.headers.items(multi=True):
        yield f"{name}: {value}"
    content = request.get_content(strict=False) or b""
    if content:
        yield content.decode("utf-8", "replace")
        yield content.decode("latin-1")


def request_carries(request: http.Request, password: str) -> bool:
    """The browser's request holds the password anywhere a device could read it from."""
    if not password:
        return False
    query = request.path.partition("?")[2]
    if query and text_carries(query, password):
        return True
    return any(text_carries(part, password) for part in _parts(request))
