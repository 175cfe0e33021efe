"""Transfer budgets: how much user-supplied data may travel towards the device.

What a technician's browser sends towards the device — the URL (path and
query), form fields, JSON/text bodies, header values a script may set, new
cookie values, WebSocket frames — is counted per request and summed per session. A
cookie or header value the session already sent costs nothing again (the
device's own session cookie is sent with every request), so the budget
measures *new* data, which is what a file trickled out in pieces would be.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from mitmproxy import http

# Headers a page script cannot set (the Fetch standard's forbidden request headers, plus the
# ones the proxy itself rewrites); every other header value counts as user data.
BROWSER_HEADERS = frozenset(
    {
        "host", "connection", "keep-alive", "content-length", "transfer-encoding", "te", "trailer",
        "upgrade", "via", "expect", "date", "dnt", "cookie", "cookie2", "origin", "referer",
        "user-agent", "accept-charset", "accept-encoding", "access-control-request-headers",
        "access-control-request-method", "priority", "upgrade-insecure-requests",
    }
)
_SEEN_CAP = 512  # remembered cookie/header values per session (digests)


@dataclass(frozen=True, slots=True)
class UserData:
    """User-supplied bytes of one request (or frame), by where they travel."""

    parts: tuple[tuple[str, int], ...]  # (where, bytes): "url", "body", "headers", "cookies", "websocket"

    @property
    def total(self) -> int:
        return sum(size for _, size in self.parts)

    def describe(self) -> str:
        return ", ".join(f"{where} {size} B" for where, size in self.parts if size) or "nothing"


def _digest(value: bytes) -> bytes:
    return hashlib.blake2b(value, digest_size=12).digest()


_BROWSER_HEADER_BYTES = frozenset(name.encode() for name in BROWSER_HEADERS)


def custom_headers(req: http.Request) -> list[tuple[bytes, bytes]]:
    """Header fields a page script may have set (any name outside the forbidden ones and
    ``sec-``/``proxy-``), as sent."""
    out = []
    for name, value in req.headers.fields:
        lowered = name.lower()
        if lowered not in _BROWSER_HEADER_BYTES and not lowered.startswith((b"sec-", b"proxy-")):
            out.append((name, value))
    return out


def cookie_pairs(req: http.Request) -> list[tuple[bytes, bytes]]:
    """Every ``name=value`` of the Cookie header fields, as sent."""
    out = []
    for name, value in req.headers.fields:
        if name.lower() == b"cookie":
            for part in value.split(b";"):
                key, _, val = part.strip().partition(b"=")
                if key or val:
                    out.append((key, val))
    return out


@dataclass(slots=True)
class SessionLedger:
    """What one session has sent so far: bytes used and the header/cookie values already seen."""

    used: int = 0
    seen: set[bytes] = field(default_factory=set)
    since: float = field(default_factory=time.monotonic)  # start of the budget window

    def remember(self, values: Iterable[bytes]) -> None:
        if len(self.seen) > _SEEN_CAP:
            self.seen.clear()  # forgetting costs the session budget, never lets data through
        self.seen.update(_digest(v) for v in values)


@dataclass(frozen=True, slots=True)
class RequestData:
    """One request's user data and the header and cookie values this session had not sent yet
    (only those cost budget and need checking; they are remembered once the request is allowed)."""

    usage: UserData
    new_header_values: list[bytes]
    new_cookie_values: list[bytes]
    keys: list[bytes]


def request_user_data(req: http.Request, ledger: SessionLedger) -> RequestData:
    headers = [(name + b":" + value, value) for name, value in custom_headers(req)]
    cookies = [(name + b"=" + value, value) for name, value in cookie_pairs(req)]
    new_headers = [(key, value) for key, value in headers if _digest(key) not in ledger.seen]
    new_cookies = [(key, value) for key, value in cookies if _digest(key) not in ledger.seen]
    usage = UserData((
        ("url", len(req.path)),  # path and query: a script chooses both
        ("body", len(req.raw_content or b"")),
        ("headers", sum(len(key) for key, _ in new_headers)),
        ("cookies", sum(len(key) for key, _ in new_cookies)),
    ))
    return RequestData(usage, [v for _, v in new_headers], [v for _, v in new_cookies],
                       [key for key, _ in new_headers + new_cookies])
