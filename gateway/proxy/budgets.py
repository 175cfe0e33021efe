"""Transfer budgets: how much user-supplied data may travel towards the device.

What a technician's browser sends towards the device — the URL (path and
query), form fields, JSON/text bodies, header values a script may set, new
cookie values, WebSocket frames — is counted per request and summed per session. A
cookie or header value the session already sent costs nothing again (the
device's own session cookie is sent with every request), so the budget
measures *new* data, which is what a file trickled out in pieces would be.

The URL is counted the same way (issue 21 F4: counting every request's path locked a
technician out of a device whose pages poll a status URL): an address the tally has seen
before costs ``REPEAT_COST`` (1 byte: which of the at most ``URL_CAP`` remembered addresses a
request picks can say at most 8 bits), a number in the query (a cache-buster, a timestamp,
a counter) is counted for the digits' information only (a timestamp near the proxy's clock
for a few bytes), so polling with ``?_=<timestamp>`` costs a few bytes per request, while
every new path or text in the query still costs its length. A request that carries nothing
new may go on past the session budget, at most ``REPEAT_RATE`` per second on average
(``RepeatThrottle``): the technician can still look at the device, and the choice among
seen addresses stays a bounded channel.
"""

from __future__ import annotations

import hashlib
import math
import re
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
URL_CAP = 256  # remembered addresses per tally (least recently used forgotten first): 8 bits of choice
REPEAT_COST = 1  # bytes a request costs whose address (method, path, query without numbers) was seen
REPEAT_RATE = 1.0  # requests per second with nothing new that pass once the session budget is spent
REPEAT_BURST = 60  # ... and how many of them at once (a page and its assets)
REPEAT_MAX_WAIT_S = 5.0  # a request that would wait longer for its turn is refused
TIMESTAMP_SLACK_S = 3600.0  # a query number this near the proxy's clock is taken as a timestamp
_NUMBER = re.compile(rb"[0-9]{1,40}(?:\.[0-9]{1,40})?")
_DIGIT_BITS = math.log2(10)


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
    urls: dict[bytes, None] = field(default_factory=dict)  # digests of addresses sent, oldest first
    throttle: RepeatThrottle = field(default_factory=lambda: RepeatThrottle())

    def remember(self, values: Iterable[bytes]) -> None:
        if len(self.seen) > _SEEN_CAP:
            self.seen.clear()  # forgetting costs the session budget, never lets data through
        self.seen.update(_digest(v) for v in values)

    def remember_url(self, key: bytes) -> None:
        """Remember an address as sent (most recently used last; the oldest go past ``URL_CAP``)."""
        self.urls.pop(key, None)
        self.urls[key] = None
        while len(self.urls) > URL_CAP:
            del self.urls[next(iter(self.urls))]

    def resets_at(self, window_s: float) -> float:
        """When this tally's window ends, as a wall-clock timestamp."""
        return time.time() + max(0.0, self.since + window_s - time.monotonic())


class RepeatThrottle:
    """A token bucket for requests that carry nothing new once the session budget is spent:
    ``REPEAT_BURST`` at once, then ``REPEAT_RATE`` per second."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._tokens = float(REPEAT_BURST)
        self._at = clock()

    def reserve(self) -> float | None:
        """Take a turn: how long to wait for it (0: at once), or None when that would be longer
        than ``REPEAT_MAX_WAIT_S`` (no turn taken)."""
        now = self._clock()
        self._tokens = min(float(REPEAT_BURST), self._tokens + (now - self._at) * REPEAT_RATE)
        self._at = now
        wait = max(0.0, (1.0 - self._tokens) / REPEAT_RATE)
        if wait > REPEAT_MAX_WAIT_S:
            return None
        self._tokens -= 1.0
        return wait


@dataclass(frozen=True, slots=True)
class RequestData:
    """One request's user data and the header and cookie values this session had not sent yet
    (only those cost budget and need checking; they are remembered once the request is allowed).
    ``url_key`` is the digest of its address (remembered once allowed); ``nothing_new`` says it
    only repeats an address already sent, with no body and no new header or cookie value."""

    usage: UserData
    new_header_values: list[bytes]
    new_cookie_values: list[bytes]
    keys: list[bytes]
    url_key: bytes = b""
    nothing_new: bool = False
    url_seen: bool = False


def is_timestamp(digits: bytes, now: float) -> bool:
    """Seconds or milliseconds (10 or 13 digits) within ``TIMESTAMP_SLACK_S`` of ``now``."""
    if not (digits.isdigit() and len(digits) in (10, 13)):
        return False
    return abs(int(digits) / (1000.0 if len(digits) == 13 else 1.0) - now) <= TIMESTAMP_SLACK_S


def number_cost(digits: bytes, now: float) -> int:
    """Bytes a number in the query costs: a timestamp (``is_timestamp``) for the bits that say
    where in the span it lies (2 bytes for seconds, 3 for milliseconds), any other number for
    its digits' information (log2(10) bits a digit)."""
    if is_timestamp(digits, now):
        return math.ceil(math.log2(2 * TIMESTAMP_SLACK_S * (1000 if len(digits) == 13 else 1) + 1) / 8)
    return math.ceil(sum(1 for c in digits if 48 <= c <= 57) * _DIGIT_BITS / 8)


@dataclass(frozen=True, slots=True)
class UrlShape:
    """A request's address with every number in a query value replaced by ``#`` (what a repeat
    must match), what those numbers cost, and how many of them are not timestamps."""

    shape: bytes
    numbers_cost: int = 0
    other_numbers: int = 0


def url_shape(path: bytes, now: float) -> UrlShape:
    base, sep, query = path.partition(b"?")
    if not sep:
        return UrlShape(base)
    cost = others = 0
    shaped = []
    for part in query.split(b"&"):
        name, eq, value = part.partition(b"=")
        if eq and _NUMBER.fullmatch(value):
            cost += number_cost(value, now)
            others += not is_timestamp(value, now)
            value = b"#"
        shaped.append(name + eq + value)
    return UrlShape(base + b"?" + b"&".join(shaped), cost, others)


def with_proxy_time(path: str, now: float) -> str:
    """``path`` with every timestamp in its query replaced by the proxy's own clock (same unit):
    what the browser put there no longer reaches the device."""
    base, sep, query = path.partition("?")
    if not sep:
        return path
    parts = []
    for part in query.split("&"):
        name, eq, value = part.partition("=")
        if eq and is_timestamp(value.encode("utf-8", "surrogateescape"), now):
            value = str(int(now * 1000)) if len(value) == 13 else str(int(now))
        parts.append(name + eq + value)
    return base + "?" + "&".join(parts)


def request_user_data(req: http.Request, ledger: SessionLedger, now: float | None = None) -> RequestData:
    headers = [(name + b":" + value, value) for name, value in custom_headers(req)]
    cookies = [(name + b"=" + value, value) for name, value in cookie_pairs(req)]
    new_headers = [(key, value) for key, value in headers if _digest(key) not in ledger.seen]
    new_cookies = [(key, value) for key, value in cookies if _digest(key) not in ledger.seen]
    url = url_shape(req.method.encode() + b" " + req.path.encode("utf-8", "surrogateescape"),
                    time.time() if now is None else now)
    url_key = _digest(url.shape)
    seen = url_key in ledger.urls
    body = len(req.raw_content or b"")
    usage = UserData((
        # path and query: a script chooses both; an address sent before costs REPEAT_COST
        ("url", REPEAT_COST if seen else len(url.shape) - len(req.method) - 1),
        ("numbers", url.numbers_cost),
        ("body", body),
        ("headers", sum(len(key) for key, _ in new_headers)),
        ("cookies", sum(len(key) for key, _ in new_cookies)),
    ))
    # past the budget its timestamps are replaced by the proxy's clock (with_proxy_time)
    nothing_new = seen and not url.other_numbers and not body and not new_headers and not new_cookies
    return RequestData(usage, [v for _, v in new_headers], [v for _, v in new_cookies],
                       [key for key, _ in new_headers + new_cookies], url_key, nothing_new, seen)


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
