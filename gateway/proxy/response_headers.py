"""The device's response headers are checked like its bodies (issue 21 round 4, F3).

A header value reaches the browser as surely as a body: ten ``X-D<n>`` headers
carried 64 KB of base64, ``Set-Cookie: d0=<3000 base64 characters>`` put a file
into the cookie jar (a page script reads it), and ``302 Location:
data:application/octet-stream;base64,...`` handed the browser a ``data:`` URL.
Every header the proxy passes on (not those ``SecurityHeaders`` removes and sets
itself) is checked on its own and all of them together:

* ``Location``, ``Content-Location`` and the URL of ``Refresh`` may not be
  ``data:``, ``blob:``, ``javascript:``, ``vbscript:`` or ``filesystem:`` URLs;
* a device cookie's name and value may be at most ``COOKIE_VALUE_ALLOWANCE`` characters
  (1,024: the lab printers set 32-character session ids; a long JWT-style token
  still fits) and a response may set at most ``MAX_SET_COOKIES`` cookies;
* any other header value at most ``MAX_HEADER_VALUE`` characters, and names and
  values together at most ``MAX_HEADER_BYTES`` per response (the lab EWS pages:
  under 400);
* names and values together hold at most ``ENCODED_ALLOWANCE`` encoded-looking
  characters (base64, hex, ... however cut up, and the any-alphabet forms): the
  same checks as a body, with a smaller allowance (a body may hold 4,096).

The checks are pure (no I/O); ``BlockDownloads`` refuses the response on a
finding (``download.header_*``), audited like every other refusal.
"""

from __future__ import annotations

from collections.abc import Iterable

from gateway.proxy import encoded

MAX_HEADER_VALUE = 2048
MAX_HEADER_BYTES = 8 * 1024
COOKIE_VALUE_ALLOWANCE = 1024
MAX_SET_COOKIES = 20
ENCODED_ALLOWANCE = 1024
_URL_HEADERS = frozenset({b"location", b"content-location"})
_ACTIVE_SCHEMES = (b"data:", b"blob:", b"javascript:", b"vbscript:", b"filesystem:")
_URL_WHITESPACE = bytes(range(0x21))  # a browser strips leading controls and spaces from a URL

Finding = tuple[str, str]  # rule, reason


def _active_scheme(url: bytes) -> bytes | None:
    lowered = url.lstrip(_URL_WHITESPACE).lower()
    # tabs and newlines inside the scheme are dropped by the URL parser ("java\tscript:")
    lowered = lowered.replace(b"\t", b"").replace(b"\n", b"").replace(b"\r", b"")
    return next((s for s in _ACTIVE_SCHEMES if lowered.startswith(s)), None)


def _refresh_url(value: bytes) -> bytes:
    """The URL of ``Refresh: 5; url=...`` (or ``5, url=...``, or ``5; ...``)."""
    _delay, sep, rest = value.partition(b";")
    if not sep:
        _delay, sep, rest = value.partition(b",")
    rest = rest.strip()
    if rest[:4].lower() == b"url=":
        rest = rest[4:].strip()
    return rest.strip(b"'\"")


def header_finding(fields: Iterable[tuple[bytes, bytes]], ignored: frozenset[bytes]) -> Finding | None:
    """The first problem of a response's header fields (raw name/value bytes), or None.
    ``ignored``: lower-case names the proxy removes and sets itself (not passed on)."""
    checked: list[bytes] = []
    total = cookies = 0
    for raw_name, value in fields:
        name = raw_name.lower()
        if name in ignored:
            continue
        total += len(raw_name) + len(value)
        if name == b"set-cookie":
            cookies += 1
            pair = value.split(b";", 1)[0].strip()
            if len(pair) > COOKIE_VALUE_ALLOWANCE:
                return ("download.header_too_large",
                        f"The device set a cookie of {len(pair)} characters; a device cookie (name and "
                        f"value) may hold at most {COOKIE_VALUE_ALLOWANCE}.")
        if len(value) > MAX_HEADER_VALUE:
            return ("download.header_too_large",
                    f"The response header {raw_name.decode('latin-1')[:64]!r} has {len(value)} characters; "
                    f"at most {MAX_HEADER_VALUE} are passed on.")
        if name in _URL_HEADERS or name == b"refresh":
            url = _refresh_url(value) if name == b"refresh" else value
            scheme = _active_scheme(url)
            if scheme is not None:
                return ("download.header_url",
                        f"The device redirects to a {scheme.decode()} URL ({raw_name.decode('latin-1')}), "
                        "which would hand the browser data instead of a page.")
        checked.append(raw_name)
        checked.append(value)
    if cookies > MAX_SET_COOKIES:
        return ("download.header_too_large",
                f"The device set {cookies} cookies in one response; at most {MAX_SET_COOKIES} are passed on.")
    if total > MAX_HEADER_BYTES:
        return ("download.header_too_large",
                f"The response headers hold {total} bytes; at most {MAX_HEADER_BYTES} are passed on.")
    joined = b"\n".join(checked)
    if len(joined) * 4 < ENCODED_ALLOWANCE * 3:
        return None  # 8 bits a byte at most: fewer bytes cannot hold the allowance's 6-bit characters' worth
    hit = (encoded.find_encoded(joined, ENCODED_ALLOWANCE)
           or encoded.encoded_total(joined, ENCODED_ALLOWANCE)
           or encoded.any_alphabet(joined, ENCODED_ALLOWANCE))
    if hit is not None:
        return "download.header_encoded", f"The response headers carry {hit.describe()}: an encoded file."
    return None
