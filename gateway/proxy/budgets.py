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


def custom_headers(req: http.Request) -> list[tuple[str, str]]:
    """Headers a page script may have set (any name outside the forbidden ones and ``sec-``/``proxy-``)."""
    return [
        (name, value) for name, value in req.headers.items(multi=True)
        if name.lower() not in BROWSER_HEADERS and not name.lower().startswith(("sec-", "proxy-"))
    ]


@dataclass(slots=True)
class SessionLedger:
    """What one session has sent so far: bytes used and the header/cookie values already seen."""

    used: int = 0
    seen: set[bytes] = field(default_factory=set)

    def novel(self, values: Iterable[bytes]) -> list[bytes]:
        """The values this session has not sent before (they are not remembered yet)."""
        return [v for v in values if _digest(v) not in self.seen]

    def remember(self, values: Iterable[bytes]) -> None:
        if len(self.seen) > _SEEN_CAP:
            self.seen.clear()  # forgetting costs the session budget, never lets data through
        self.seen.update(_digest(v) for v in values)


def request_user_data(req: http.Request, ledger: SessionLedger) -> tuple[UserData, list[bytes]]:
    """The user data of ``req`` and the new header/cookie values it carries (to remember once allowed)."""
    url = req.path  # path and query: a script chooses both
    headers = [f"{name}:{value}".encode("utf-8", "surrogateescape") for name, value in custom_headers(req)]
    cookies = [
        f"{name}={value}".encode("utf-8", "surrogateescape")
        for name, value in req.cookies.items(multi=True)
    ]
    new_headers = ledger.novel(headers)
    new_cookies = ledger.novel(cookies)
    data = UserData((
        ("url", len(url)),
        ("body", len(req.raw_content or b"")),
        ("headers", sum(len(h) for h in new_headers)),
        ("cookies", sum(len(c) for c in new_cookies)),
    ))
    return data, new_headers + new_cookies
