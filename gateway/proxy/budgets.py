"""Transfer budgets: how much user-supplied data may travel towards the device.

What a technician's browser sends towards the device — the URL (path and
query), form fields, JSON/text bodies, header values (every field but the ones the proxy sets:
``NOT_COUNTED_HEADERS``; a client holding the session cookie sets ``User-Agent``, ``Sec-*``,
``Priority`` ... to anything), new cookie values, WebSocket messages (each its bytes plus one: an
empty message is no free symbol, ``websocket_guard.MESSAGE_COST``) — is counted per request and
summed per session. A
cookie or header value the session already sent costs its bytes only once (the
device's own session cookie is sent with every request); which of them a request
carries is charged as its shape (below), so the budget measures *new* data and
the choice among data already sent, which is what a file trickled out in pieces
would be.

The URL is counted the same way (issue 21 F4: counting every request's path locked a
technician out of a device whose pages poll a status URL): an address the tally has seen
before costs ``REPEAT_COST`` (1 byte: which of the at most ``URL_CAP`` remembered addresses a
request picks can say at most 8 bits), a number in the query (a cache-buster, a timestamp,
a counter) is counted for the digits' information only (a timestamp near the proxy's clock
for a few bytes), so polling with ``?_=<timestamp>`` costs a few bytes per request, while
every new path or text in the query still costs its length.

Which values already sent a request carries, in which order, or leaves out, is user-chosen
information too (issue 21 round 4 F5: 112 headers ``x-bN: 1`` present or absent moved 14 bytes
a request for 1 byte of budget). So the unit that is "seen" is the request's **shape**: its
address plus the sequence of its header fields and cookies, each field as
the remembered value it repeats (a cookie the device set, sent with the device's latest value
for it, as "the device's cookie" whatever the value). A shape seen before costs
``REPEAT_COST`` (which of at most ``SHAPE_CAP`` remembered shapes: 8 bits). A new shape costs
what is new in it plus the information of its field sequence (``choice_bits``: each field one
of the remembered values, a new one or the end, log2(N + 2) bits a field for N remembered
values; a ``Referer`` naming a page the tally requested is one of them, ``SessionLedger.pages``),
so presence bits and value choice are charged at least what they can carry.

A request whose shape was seen may go on past the session budget, at most ``REPEAT_RATE`` per
second on average (``RepeatThrottle``), and a top-level navigation of a seen shape has a
bucket of its own (``NAV_RATE``), so a script's repeats cannot starve the technician's own
clicks: the technician can still look at the device, and the choice among seen shapes stays a
bounded channel.
"""

from __future__ import annotations

import hashlib
import math
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from mitmproxy import http

# Header fields whose value is not the browser's choice: the proxy sets ``Host`` (the device's)
# and ``Sec-WebSocket-Key`` (its own random key, ``request_headers.normalise``), ``Content-Length``
# says the body's size (the body counts), cookies are counted per ``name=value``. Every other
# field counts as user data, the ones only a browser sets included (issue 21 round 4, f21d: a
# client holding the session cookie sets ``User-Agent``, ``Referer``, ``Sec-*``, ``Priority``, ...
# to anything); ``Referer``, ``Origin``, ``Sec-Fetch-*`` and ``Priority`` are first normalised.
# The four reach the device with fixed names at fixed places (``request_headers.canonical_fields``):
# their letter case and position carried 5 bytes a request for 1 budget byte (tester zc F1).
NOT_COUNTED_HEADERS = frozenset({"host", "content-length", "cookie", "sec-websocket-key"})
SEEN_CAP = 512  # remembered cookie/header values per tally (digests, least recently used forgotten first)
DEVICE_COOKIE_CAP = 64  # cookie names whose latest value the device set is remembered
SHAPE_CAP = 256  # remembered request shapes per tally (least recently used forgotten first): 8 bits of choice
URL_CAP = 256  # remembered addresses per tally (least recently used forgotten first): 8 bits of choice
PAGE_CAP = 256  # remembered pages (exact addresses a Referer may name) per tally
REPEAT_COST = 1  # bytes a request costs whose address (method, path, query without numbers) was seen
REPEAT_RATE = 1.0  # requests per second with nothing new that pass once the session budget is spent
REPEAT_BURST = 60  # ... and how many of them at once (a page and its assets)
REPEAT_MAX_WAIT_S = 5.0  # a request that would wait longer for its turn is refused
NAV_RATE = 0.2  # top-level navigations of a seen shape past the budget: a bucket of their own (one per 5 s)
NAV_BURST = 10  # ... and how many at once
# Past the budget these are dropped from a request whose shape is only new because of them: a
# conditional or cache-control request made unconditional carries nothing, and the device
# answers in full (a reload, a revalidation with the device's latest ETag).
CACHE_HEADERS = (b"if-none-match", b"if-modified-since", b"cache-control", b"pragma")
# ... and these too: a request whose shape is new only because of them goes on past the budget
# without them (the Referer names which page asked: the same asset from another page).
DROPPABLE_HEADERS = (*CACHE_HEADERS, b"referer")
TIMESTAMP_SLACK_S = 3600.0  # a query number this near the proxy's clock is taken as a timestamp
_NUMBER = re.compile(rb"[0-9]{1,40}(?:\.[0-9]{1,40})?")
_DIGIT_BITS = math.log2(10)


@dataclass(frozen=True, slots=True)
class UserData:
    """User-supplied bytes of one request (or frame), by where they travel."""

    parts: tuple[tuple[str, int], ...]  # (where, bytes): "url", "body", "headers", "cookies", "websocket"

    @property
    def total(self) -> int:
        total = 0
        for _, size in self.parts:  # a loop: a generator costs more on the six parts of every request
            total += size
        return total

    def describe(self) -> str:
        return ", ".join(f"{where} {size} B" for where, size in self.parts if size) or "nothing"


def _digest(value: bytes) -> bytes:
    return hashlib.blake2b(value, digest_size=12).digest()


_NOT_COUNTED = frozenset(name.encode() for name in NOT_COUNTED_HEADERS)


def custom_headers(req: http.Request) -> list[tuple[bytes, bytes]]:
    """Header fields whose value the browser (or whoever holds the session cookie) chose: every
    field but ``NOT_COUNTED_HEADERS``, as sent."""
    return [(name, value) for name, value in req.headers.fields if name.lower() not in _NOT_COUNTED]


def page_key(url: bytes) -> bytes:
    """What ``SessionLedger.pages`` remembers of a page's full address (a ``Referer`` value)."""
    return _digest(b"referer:" + url)


def cookie_pairs(req: http.Request) -> list[tuple[bytes, bytes]]:
    """Every ``name=value`` of the Cookie header fields, as sent."""
    out = []
    for name, value in req.headers.fields:
        if name.lower() == b"cookie":
            out += cookie_pairs_of(value)
    return out


def cookie_pairs_of(value: bytes) -> list[tuple[bytes, bytes]]:
    """Every ``name=value`` of one Cookie header field's value."""
    out = []
    for part in value.split(b";"):
        key, _, val = part.strip().partition(b"=")
        if key or val:
            out.append((key, val))
    return out


def _lru_touch(lru: dict[bytes, None], key: bytes, cap: int) -> None:
    """Mark ``key`` as used most recently; forget the least recently used past ``cap``."""
    if lru and next(reversed(lru)) == key:
        return  # exact: already the most recent (popping and adding it again leaves the same order)
    lru.pop(key, None)
    lru[key] = None
    while len(lru) > cap:
        del lru[next(iter(lru))]


@dataclass(slots=True)
class SessionLedger:
    """What one tally has sent so far: bytes used, the header/cookie values already seen, the
    addresses and request shapes already sent (all bounded, least recently used forgotten
    first: forgetting only ever costs budget, never lets data through)."""

    used: int = 0
    seen: dict[bytes, None] = field(default_factory=dict)  # digests of "name:value" / "name=value"
    since: float = field(default_factory=time.monotonic)  # start of the budget window
    urls: dict[bytes, None] = field(default_factory=dict)  # digests of addresses sent, oldest first
    shapes: dict[bytes, None] = field(default_factory=dict)  # digests of request shapes sent, oldest first
    device_cookies: dict[bytes, bytes] = field(default_factory=dict)  # name -> digest of the device's latest value
    pages: dict[bytes, None] = field(default_factory=dict)  # page_key of pages requested (what a Referer may name)
    throttle: RepeatThrottle = field(default_factory=lambda: RepeatThrottle())
    nav_throttle: RepeatThrottle = field(default_factory=lambda: RepeatThrottle(rate=NAV_RATE, burst=NAV_BURST))
    resets_at_wall: float | None = None  # the shared tally's reset time (proxy workers), wall clock

    def remember(self, values: Iterable[bytes]) -> None:
        self.remember_digests([_digest(v) for v in values])

    def remember_digests(self, digests: Iterable[bytes]) -> None:
        """``remember`` of values whose digests (``_digest``) were already taken."""
        for d in digests:
            _lru_touch(self.seen, d, SEEN_CAP)

    def remember_device_cookie(self, pair: bytes) -> None:
        """A ``name=value`` the device set: free when sent back, and its latest value per name."""
        name, _, value = pair.partition(b"=")
        self.remember([pair])
        self.device_cookies.pop(name, None)
        self.device_cookies[name] = _digest(value)
        while len(self.device_cookies) > DEVICE_COOKIE_CAP:
            del self.device_cookies[next(iter(self.device_cookies))]

    def remember_url(self, key: bytes) -> None:
        """Remember an address as sent (most recently used last; the oldest go past ``URL_CAP``)."""
        _lru_touch(self.urls, key, URL_CAP)

    def remember_shape(self, key: bytes) -> None:
        _lru_touch(self.shapes, key, SHAPE_CAP)

    def remember_page(self, url: bytes) -> None:
        """A page's full address (session origin, path and query) as a ``Referer`` would name it."""
        _lru_touch(self.pages, page_key(url), PAGE_CAP)

    def resets_at(self, window_s: float) -> float:
        """When this tally's window ends, as a wall-clock timestamp (the shared tally's, when
        the pool named it)."""
        if self.resets_at_wall is not None:
            return self.resets_at_wall
        return time.time() + max(0.0, self.since + window_s - time.monotonic())


class RepeatThrottle:
    """A token bucket for requests that carry nothing new once the session budget is spent:
    ``burst`` at once (``REPEAT_BURST``), then ``rate`` per second (``REPEAT_RATE``)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, *, rate: float = REPEAT_RATE,
                 burst: int = REPEAT_BURST) -> None:
        self._clock = clock
        self._rate = rate
        self._burst = float(burst)
        self._tokens = float(burst)
        self._at = clock()

    def reserve(self) -> float | None:
        """Take a turn: how long to wait for it (0: at once), or None when that would be longer
        than ``REPEAT_MAX_WAIT_S`` (no turn taken)."""
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._at) * self._rate)
        self._at = now
        wait = max(0.0, (1.0 - self._tokens) / self._rate)
        if wait > REPEAT_MAX_WAIT_S:
            return None
        self._tokens -= 1.0
        return wait


class RequestData(NamedTuple):
    """One request's user data and the header and cookie values this tally had not sent yet
    (only those cost budget and need checking; they are remembered once the request is allowed).
    ``url_key`` and ``shape_key`` are the digests of its address and of its shape (remembered
    once allowed); ``nothing_new`` says its shape was sent before (the same address, the same
    header fields and cookies) and it has no body and no number other than a timestamp. (A named
    tuple, not a frozen dataclass: built on every request, at a fifth of the cost.)"""

    usage: UserData
    new_header_values: list[bytes]
    new_cookie_values: list[bytes]
    keys: list[bytes]  # every header and cookie key it carries (remembered, or touched, once allowed)
    url_key: bytes = b""
    nothing_new: bool = False
    url_seen: bool = False
    shape_key: bytes = b""
    loose_key: bytes = b""  # the shape without ``DROPPABLE_HEADERS`` (remembered too, for past the budget)
    dropped: tuple[bytes, ...] = ()  # past the budget: passes only without these header fields
    key_digests: tuple[bytes, ...] = ()  # the digests of ``keys``, in order (what ``remember`` would take)
    new_header_names: tuple[bytes, ...] = ()  # the names of the new header fields (checked like their values)
    new_cookie_names: tuple[bytes, ...] = ()  # ... and of the new cookies


def is_timestamp(digits: bytes, now: float) -> bool:
    """Seconds or milliseconds (10 or 13 digits) within ``TIMESTAMP_SLACK_S`` of ``now``."""
    if not (digits.isdigit() and len(digits) in (10, 13)):
        return False
    return abs(int(digits) / (1000.0 if len(digits) == 13 else 1.0) - now) <= TIMESTAMP_SLACK_S


def number_cost(digits: bytes, now: float) -> int:
    """Bytes a number in the query costs: a timestamp (``is_timestamp``) for the bits that say
    where in the span it lies (2 bytes for seconds, 3 for milliseconds), any other number for
    its digits' information (log2(10) bits a digit) and, when it has a decimal point, where the
    point stands (log2(digits + 1) bits: ``1.234567`` and ``123456.7`` say different things;
    issue 21 round 5 N2)."""
    if is_timestamp(digits, now):
        return math.ceil(math.log2(2 * TIMESTAMP_SLACK_S * (1000 if len(digits) == 13 else 1) + 1) / 8)
    count = sum(1 for c in digits if 48 <= c <= 57)
    point = math.log2(count + 1) if b"." in digits else 0.0
    return math.ceil((count * _DIGIT_BITS + point) / 8)


class UrlShape(NamedTuple):
    """A request's address with every number in a query value replaced by ``#`` (a timestamp by
    ``#s`` or ``#ms``, its unit: ``with_proxy_time`` keeps it) (what a repeat
    must match), what those numbers cost, and how many of them are not timestamps. (A named
    tuple, not a frozen dataclass: built on every request, at a third of the cost.)"""

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
            stamp = is_timestamp(value, now)
            others += not stamp
            # a timestamp's unit is the client's choice and reaches the device past the budget
            # (``with_proxy_time`` keeps it): seconds and milliseconds are different shapes (tester zc F2)
            value = (b"#ms" if len(value) == 13 else b"#s") if stamp else b"#"
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


def choice_bits(fields: int, remembered: int) -> float:
    """The information a request's sequence of ``fields`` header fields and cookies can carry
    when ``remembered`` values are known: each field one of them, or a new one (whose bytes
    cost their length), then the end (log2(remembered + 2) bits each), plus one bit for "a new
    shape, not a seen one". A prefix code: no choice of fields carries more than this."""
    return 1.0 + (fields + 1) * math.log2(remembered + 2)


def request_user_data(req: http.Request, ledger: SessionLedger, now: float | None = None,
                      drop: Iterable[bytes] = ()) -> RequestData:
    """What ``req`` costs against ``ledger`` (header fields named in ``drop`` left out: what the
    request would cost without them)."""
    dropped = frozenset(drop)
    seen_values, pages = ledger.seen, ledger.pages
    # custom_headers and cookie_pairs in one pass over the fields, each header and cookie key's
    # digest taken once: it is both the "sent before?" look-up and the shape's symbol
    keys: list[bytes] = []  # every header key, then every cookie key
    symbols: list[bytes] = []
    loose: list[bytes] = []  # the symbols of the fields not in DROPPABLE_HEADERS
    new_headers: list[tuple[bytes, bytes]] = []
    cookies: list[tuple[bytes, bytes]] = []
    for name, value in req.headers.fields:
        lower = name.lower()
        if lower == b"cookie":
            cookies += cookie_pairs_of(value)
            continue
        if lower in _NOT_COUNTED or lower in dropped:
            continue
        key = name + b":" + value
        sym = _digest(key)
        keys.append(key)
        symbols.append(sym)
        if lower not in DROPPABLE_HEADERS:
            loose.append(sym)
        # a Referer naming a page this tally requested is a choice among them (``choice_bits``), not new
        if sym not in seen_values and not (lower == b"referer" and page_key(value) in pages):
            new_headers.append((key, value))
    new_cookies: list[tuple[bytes, bytes]] = []
    cookie_symbols: list[bytes] = []
    digests = symbols.copy()  # of every key: the header symbols, then each cookie key's
    for name, value in cookies:
        key = name + b"=" + value
        sym = _digest(key)
        keys.append(key)
        digests.append(sym)
        if sym not in seen_values:
            new_cookies.append((key, value))
        device = ledger.device_cookies.get(name)  # the device's own latest cookie: its presence, not its value
        cookie_symbols.append(b"device-cookie=" + name if device is not None and device == _digest(value) else sym)
    method = req.method
    # the protocol version reaches the device as sent (HTTP/1.0 or 1.1: a client's choice, one bit
    # a request): part of the address's shape unless it is the usual one (tester a6q)
    version = req.data.http_version
    head = method.encode() if version == b"HTTP/1.1" else version + b" " + method.encode()
    # ``data.path``: the bytes ``req.path`` decodes (surrogateescape), as its encoding gives them back
    url = url_shape(head + b" " + req.data.path, time.time() if now is None else now)
    url_key = _digest(url.shape)
    seen = url_key in ledger.urls
    # without header fields and cookies the shape's text is the address's: the same digest
    shape_key = (_digest(b"\n".join([url.shape, *symbols, *cookie_symbols])) if symbols or cookie_symbols
                 else url_key)
    # without a droppable field the loose shape is the same text, hence the same digest
    loose_key = (shape_key if len(loose) == len(symbols)
                 else _digest(b"\n".join([url.shape, *loose, *cookie_symbols])))
    shape_seen = shape_key in ledger.shapes
    body = len(req.raw_content or b"")
    fields_sent = len(symbols) + len(cookie_symbols)
    choice = (REPEAT_COST if shape_seen
              else math.ceil(choice_bits(fields_sent, len(ledger.seen) + len(ledger.pages)) / 8))
    usage = UserData((
        # path and query: a script chooses both; an address sent before costs REPEAT_COST
        ("url", (0 if shape_seen else REPEAT_COST) if seen else len(url.shape) - len(head) - 1),
        ("numbers", url.numbers_cost),
        ("body", body),
        ("headers", sum([len(key) for key, _ in new_headers])),
        ("cookies", sum([len(key) for key, _ in new_cookies])),
        # which shape (seen), or which values in which order (new): see ``choice_bits``
        ("choice", choice),
    ))
    # past the budget its timestamps are replaced by the proxy's clock (with_proxy_time)
    nothing_new = shape_seen and not url.other_numbers and not body
    return RequestData(usage, [v for _, v in new_headers], [v for _, v in new_cookies],
                       keys,  # all: used most recently
                       url_key, nothing_new, seen, shape_key, loose_key, key_digests=tuple(digests),
                       new_header_names=tuple([key[: len(key) - len(v) - 1] for key, v in new_headers]),
                       new_cookie_names=tuple([key[: len(key) - len(v) - 1] for key, v in new_cookies]))


class Reservation(NamedTuple):
    """The shared tally's answer: allowed or not, what was used before, and when (wall clock)
    the tally's window ends."""

    ok: bool
    used: int
    resets_at: float


class SharedTally(Protocol):
    """The session budgets' tally when several proxy processes serve the same sessions
    (``ProxyWorkerPool``): one authority adds a request's bytes to the tally under ``key`` only
    if that keeps it within ``budget`` (atomically), and answers what was used before and when
    the tally starts afresh (the refusal names that time, not a worker's own guess)."""

    async def reserve(self, key: str, size: int, budget: int, window_s: float) -> Reservation: ...


class TallyBook:
    """The authority's tallies: ``reserve`` checks and adds in one step (one event loop, no await)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._used: dict[str, tuple[int, float]] = {}  # key -> (bytes, start of its window)

    def reserve(self, key: str, size: int, budget: int, window_s: float) -> Reservation:
        now = self._clock()
        used, since = self._used.get(key, (0, now))
        if now - since > window_s:
            used, since = 0, now
        resets_at = time.time() + max(0.0, since + window_s - now)
        if used + size > budget:
            return Reservation(False, used, resets_at)
        self._used[key] = (used + size, since)
        if len(self._used) > 4096:  # drop tallies whose window is over (a day's worth of sessions)
            self._used = {k: v for k, v in self._used.items() if now - v[1] <= window_s}
        return Reservation(True, used, resets_at)
