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


def _form_values(text: str) -> list[str]:
    try:
        return [v for pair in parse_qsl(text, keep_blank_values=True) for v in pair]
    except ValueError:
        return []


def _json_strings(value: object, depth: int = 0) -> Iterator[str]:
    if depth > _JSON_DEPTH:
        return
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield str(k)
            yield from _json_strings(v, depth + 1)
    elif isinstance(value, list):
        for v in value:
            yield from _json_strings(v, depth + 1)
    elif value is not None:
        yield str(value)


def json_strings(text: str) -> list[str]:
    """Every string (keys too) of a JSON document, unescaped; none when it is not JSON."""
    try:
        return list(_json_strings(json.loads(text)))
    except (ValueError, RecursionError):
        return []


def text_carries(text: str, password: str) -> bool:
    """``text`` (one request part or one WebSocket frame) holds the password in a decodable form."""
    if not password:
        return False
    needle = password.casefold()
    pieces: list[str] = []
    for form in _decoded(text):
        if needle in form.casefold():
            return True
    for values in (_form_values(text), json_strings(text)):
        pieces.extend(values)
        if values and needle in "".join(values).casefold():
            return True  # split over adjacent values the device may print together
    return any(needle in p.casefold() for p in pieces)


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
