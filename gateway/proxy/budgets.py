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
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

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


class SharedTally(Protocol):
    """The session budgets' tally when several proxy processes serve the same sessions
    (``ProxyWorkerPool``): one authority adds a request's bytes to the tally under ``key`` only
    if that keeps it within ``budget`` (atomically), and answers what was used before."""

    async def reserve(self, key: str, size: int, budget: int, window_s: float) -> tuple[bool, int]: ...


class TallyBook:
    """The authority's tallies: ``reserve`` checks and adds in one step (one event loop, no await)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._used: dict[str, tuple[int, float]] = {}  # key -> (bytes, start of its window)

    def reserve(self, key: str, size: int, budget: int, window_s: float) -> tuple[bool, int]:
        now = self._clock()
        used, since = self._used.get(key, (0, now))
        if now - since > window_s:
            used, since = 0, now
        if used + size > budget:
            return False, used
        self._used[key] = (used + size, since)
        if len(self._used) > 4096:  # drop tallies whose window is over (a day's worth of sessions)
            self._used = {k: v for k, v in self._used.items() if now - v[1] <= window_s}
        return True, used
