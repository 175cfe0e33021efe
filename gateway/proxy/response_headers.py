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

Each response's allowances restart at every response, so a file spread over
many responses' headers passed (round 5 F3: ``X-Diag-<n>`` headers in codes the
encoded checks do not name carried 200 KB in about 150 responses). ``HeaderTally``
adds up, per session, the header characters passed on towards the browser that
are new: a name and value the session was sent before costs nothing, a value
that changes costs what changed (what lies between the part it shares with that
header's previous value at its start and at its end: a ``Date`` a second later
costs a character or two), a new header name its length; the first
``HEADER_FREE_PER_RESPONSE`` (128) of a response are free (a ``Date``, a new
resource's ``ETag``, ``Last-Modified`` and ``Content-Length``). A response that
would take the session past ``HEADER_DATA_ALLOWANCE`` (32 KiB) is refused
(``download.header_tally``); responses with less that is new still pass.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field

from gateway.proxy import encoded

MAX_HEADER_VALUE = 2048
MAX_HEADER_BYTES = 8 * 1024
COOKIE_VALUE_ALLOWANCE = 1024
MAX_SET_COOKIES = 20
ENCODED_ALLOWANCE = 1024
HEADER_DATA_ALLOWANCE = 32 * 1024  # new header characters towards the browser per session (round 5 F3)
HEADER_FREE_PER_RESPONSE = 128  # ... not counted in each response (a Date, a new ETag and Last-Modified)
_TALLY_SESSIONS = 4096  # sessions whose header tally is kept (the oldest forgotten first)
_SEEN_PER_SESSION = 512  # remembered name/value digests per session (least recently used forgotten first)
_NAMES_PER_SESSION = 128  # header names whose latest value is remembered per session
_LAST_FIELDS_BYTES = 4096  # a session's last fields are kept for the next response up to this size
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
    # names and values apart (a NUL is in no encoding's alphabet): a name does not lengthen the
    # run of the value after it (round 5 N1: "X-D" + 1,016 base64 characters counted as 1,040)
    joined = b"\0".join(checked)
    if len(joined) * 4 < ENCODED_ALLOWANCE * 3:
        return None  # 8 bits a byte at most: fewer bytes cannot hold the allowance's 6-bit characters' worth
    hit = (encoded.find_encoded(joined, ENCODED_ALLOWANCE)
           or encoded.encoded_total(joined, ENCODED_ALLOWANCE)
           or encoded.any_alphabet(joined, ENCODED_ALLOWANCE))
    if hit is not None:
        return "download.header_encoded", f"The response headers carry {hit.describe()}: an encoded file."
    return None


def _changed(old: bytes, new: bytes) -> int:
    """Characters of ``new`` outside what it shares with ``old`` at the start and at the end."""
    limit = min(len(old), len(new))
    head = 0
    while head < limit and old[head] == new[head]:
        head += 1
    tail = 0
    while tail < limit - head and old[-1 - tail] == new[-1 - tail]:
        tail += 1
    return len(new) - head - tail


def _field_keys(fields: tuple[tuple[bytes, bytes], ...], ignored: frozenset[bytes],
                tally: _SessionHeaders) -> list[tuple[bytes, bytes] | None]:
    """Per field its lower-case name and the digest of "name:value" (None: an ``ignored`` name),
    taken from the session's last charged fields where the field at that place is equal (the
    same bytes: the same name and digest; an EWS sends the same headers but a new Date)."""
    last, last_keys = (tally.last_fields, tally.last_keys) if ignored is tally.last_ignored else ((), [])
    keys: list[tuple[bytes, bytes] | None] = []
    for index, pair in enumerate(fields):
        if index < len(last) and last[index] == pair:
            keys.append(last_keys[index])
            continue
        name = pair[0].lower()
        if name in ignored:
            keys.append(None)
        else:
            keys.append((name, hashlib.blake2b(name + b":" + pair[1], digest_size=16).digest()))
    return keys


@dataclass(slots=True)
class _SessionHeaders:
    used: int = 0
    seen: dict[bytes, None] = field(default_factory=dict)  # digests of "name:value", oldest first
    latest: dict[bytes, bytes] = field(default_factory=dict)  # name -> its latest value
    # the fields last charged and, per field, its lower-case name and digest (None: ignored): a
    # field equal to the one at its place last time has the same name and digest, not recomputed
    last_fields: tuple[tuple[bytes, bytes], ...] = ()
    last_keys: list[tuple[bytes, bytes] | None] = field(default_factory=list)
    last_ignored: frozenset[bytes] = frozenset()
    # the last charge passed, found every field seen before and kept its fields as ``last_fields``:
    # the same fields again move the same digests and names to the end in the same order (where
    # that charge left them) at no cost, so the tally would come out as it is
    steady: bool = False


class HeaderTally:
    """Per session, the new header characters passed on towards the browser (round 5 F3)."""

    def __init__(self, allowance: int = HEADER_DATA_ALLOWANCE) -> None:
        self.allowance = allowance
        self._sessions: dict[str, _SessionHeaders] = {}

    def used(self, session_id: str) -> int:
        found = self._sessions.get(session_id)
        return found.used if found is not None else 0

    def charge(self, session_id: str, fields: Iterable[tuple[bytes, bytes]],
               ignored: frozenset[bytes]) -> Finding | None:
        """Adds what is new in a response's header fields (those passed on: not ``ignored``) to
        the session's tally, or, when that would take it past the allowance, leaves the tally
        as it is and returns the refusal."""
        if not session_id:
            return None
        tally = self._sessions.get(session_id)
        if tally is None:
            if len(self._sessions) >= _TALLY_SESSIONS:
                self._sessions.pop(next(iter(self._sessions)))
            tally = self._sessions[session_id] = _SessionHeaders()
        fields = tuple(fields)
        if tally.steady and ignored is tally.last_ignored and fields == tally.last_fields:
            return None
        keys = _field_keys(fields, ignored, tally)
        cost = 0
        new_keys: list[bytes] = []
        latest: dict[bytes, bytes] = {}
        for (raw_name, value), named in zip(fields, keys, strict=True):
            if named is None:
                continue
            name, key = named
            if key in tally.seen:
                tally.seen.pop(key)
                tally.seen[key] = None  # most recently used last
            else:
                before = latest.get(name, tally.latest.get(name))
                cost += len(raw_name) + len(value) if before is None else max(1, _changed(before, value))
                new_keys.append(key)
            latest[name] = value
        cost = max(0, cost - HEADER_FREE_PER_RESPONSE)
        if tally.used + cost > self.allowance:
            tally.steady = False  # the loop above moved digests to the end: not where the last charge left them
            return ("download.header_tally",
                    f"The device's response headers have passed {tally.used:,} new characters to this "
                    f"session and this response's would add {cost:,}: at most {self.allowance:,} are "
                    "passed on in a session (a file spread over many responses' headers).")
        tally.used += cost
        kept = sum(len(name) + len(value) for name, value in fields) <= _LAST_FIELDS_BYTES
        if kept:
            tally.last_fields, tally.last_keys, tally.last_ignored = fields, keys, ignored
        tally.steady = kept and not new_keys
        for key in new_keys:
            tally.seen[key] = None
        while len(tally.seen) > _SEEN_PER_SESSION:
            tally.seen.pop(next(iter(tally.seen)))
        for name, value in latest.items():
            tally.latest.pop(name, None)
            tally.latest[name] = value
        while len(tally.latest) > _NAMES_PER_SESSION:
            tally.latest.pop(next(iter(tally.latest)))
        return None

    def forget(self, session_id: str) -> None:
        self._sessions.pop(session_id, None)
