"""User-supplied data towards the device: per-request and per-session budgets, and no binary,
document or encoded file in the URL path, the query string, header fields or cookies (in one
name or value, or split over many: names are checked together with their values). A cookie the device itself set is sent back free. The headers only
a browser sets are first normalised from the session's state (``request_headers.normalise``:
``Referer`` only as a page this tally requested, ``Origin`` only as the session's, the WebSocket
key the proxy's own), then counted like any other.

Runs after ``BlockUploads`` (which judged the body's type and content). Budgets and thresholds
are the proxy's limits with the device vendor's profile applied (``vendor_endpoints.toml``).

With proxy worker processes the session budget is one tally for all of them: every request's
bytes are reserved at the pool (``SharedTally`` over the control channel) before the request
goes on, so a session spread over N workers still gets one budget, not N. The values a session
already sent (free when sent again) are remembered per process: on another worker they cost
once more, which only ever spends budget early.

A request shape the tally has seen (address, header fields, cookies) costs 1
byte, a new one what is new in it plus the information of its field choice, numbers in the
query their digits' information (``budgets.request_user_data``). Once the session budget is
spent, a request whose shape was seen (no body) still goes on, at most ``REPEAT_RATE`` a second
on average (``RepeatThrottle``, per process; top-level navigations have a bucket of their own,
so a script's repeats cannot starve the technician's clicks), with any timestamp in its query
replaced by the proxy's clock (in the unit of the seen shape), cache headers and the Referer
dropped when only they made the shape new, and on a device connection of its own
(``Connection: close`` towards the device: which browser connection it came on says nothing
there; the browser's connection stays open):
the technician can still look at the device. The refusal says how much was sent and when the
tally starts afresh (with workers, the pool's time).

Encoded-looking characters (base64/base32/hex runs of 96 or more with the entropy of encoded
data, bytes as decimal numbers or character references, one character per byte in any script:
``encoded.encoded_chars``) in the query, the body, new header fields and cookies (names and
values; a form's field names too) are also
summed per user and device (the same key and window as the byte budget, a tally of their own
shared by the workers): a file
trickled out in pieces each under every per-request threshold is refused once the session has
sent ``encoded_session_allowance`` of them (``upload.session_encoded``, audited).
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Iterable, Sequence
from datetime import UTC, datetime
from urllib.parse import parse_qsl, unquote

from mitmproxy import http

from gateway.proxy import encoded, pages, request_headers, sniff
from gateway.proxy.budgets import (
    DROPPABLE_HEADERS,
    RequestData,
    SessionLedger,
    SharedTally,
    UserData,
    page_key,
    request_user_data,
    with_proxy_time,
)
from gateway.proxy.decision import FlowDecision, already_answered, route_of
from gateway.proxy.deps import PublicAddress
from gateway.proxy.limits import ProxyLimits
from gateway.proxy.routes import RouteTable, SessionRoute
from gateway.proxy.vendor_profiles import VendorEndpoints

Verdict = tuple[str, str, int]  # rule, reason, size


def budget_key(route: SessionRoute) -> str:
    """Whose tally a request counts against: the user's on the device when the session names
    both (held across that user's sessions on the device), else the session's own."""
    if route.user_id and route.device_id:
        return f"user:{route.user_id}|device:{route.device_id}"
    return route.session_id


def _bytes(value: str) -> bytes:
    return value.encode("utf-8", "surrogateescape")


class TransferBudget:
    def __init__(self, limits: ProxyLimits, vendors: VendorEndpoints, routes: RouteTable,
                 shared: SharedTally | None = None, public: PublicAddress | None = None) -> None:
        self._defaults = limits
        self._shared = shared
        self._public = public  # the session origin (Referer, Origin); None: both are dropped
        self._vendors = vendors
        self._ledgers: dict[str, SessionLedger] = {}
        self._limits: dict[str, ProxyLimits] = {}  # vendor -> limits with its profile applied
        routes.on_remove(self._session_removed)

    # --- shared with the WebSocket guard ------------------------------------
    def limits_for(self, route: SessionRoute | None) -> ProxyLimits:
        vendor = route.vendor if route is not None else ""
        found = self._limits.get(vendor)
        if found is None:
            found = self._limits[vendor] = self._vendors.limits_for(vendor, self._defaults)
        return found

    def ledger(self, key: str, window_s: float | None = None) -> SessionLedger:
        """The tally under ``key`` (see ``budget_key``), started afresh once its window is over."""
        window = self._defaults.budget_window_s if window_s is None else window_s
        found = self._ledgers.get(key)
        if found is None or time.monotonic() - found.since > window:
            found = self._ledgers[key] = SessionLedger()
        return found

    def ledger_of(self, route: SessionRoute) -> SessionLedger:
        return self.ledger(budget_key(route), self.limits_for(route).budget_window_s)

    def over_budget(self, route: SessionRoute, data: UserData) -> Verdict | None:
        """Why ``data`` may not be sent in this session (None: within both budgets)."""
        lim = self.limits_for(route)
        total = data.total
        if total > lim.request_budget:
            return ("budget.request",
                    f"This request sends {total} bytes of your own data ({data.describe()}) to the device; "
                    f"at most {lim.request_budget} bytes are allowed per request.", total)
        used = self.ledger_of(route).used
        if used + total > lim.session_budget:
            return self._session_verdict(route, used, data)
        return None

    def _session_verdict(self, route: SessionRoute, used: int, data: UserData) -> Verdict:
        lim = self.limits_for(route)
        return ("budget.session",
                f"You have already sent {used} bytes of your own data (form fields, new addresses, "
                f"header values) to this device; {data.total} more ({data.describe()}) would pass the "
                f"{lim.session_budget}-byte session budget. It holds across your sessions on this device "
                f"for {lim.budget_window_s / 3600:g} hours from your first request and starts afresh at about "
                f"{self._reset_time(route)}. Until then the device's pages you already opened keep loading; "
                "only new data cannot be sent.", data.total)

    def _reset_time(self, route: SessionRoute) -> str:
        lim = self.limits_for(route)
        at = datetime.fromtimestamp(self.ledger_of(route).resets_at(lim.budget_window_s), UTC)
        return f"{at:%Y-%m-%d %H:%M} UTC"

    def charge(self, route: SessionRoute, size: int) -> None:
        self.ledger_of(route).used += size

    @property
    def shared(self) -> bool:
        return self._shared is not None

    async def reserve_shared(self, route: SessionRoute, data: UserData) -> Verdict | None:
        """With a shared tally: add ``data`` to it if the session budget allows, else why not."""
        if self._shared is None:
            return None
        lim = self.limits_for(route)
        total = data.total
        answer = await self._shared.reserve(budget_key(route), total, lim.session_budget, lim.budget_window_s)
        self.ledger_of(route).resets_at_wall = answer.resets_at  # the pool's window, not this worker's
        if answer.ok:
            return None
        return self._session_verdict(route, answer.used, data)

    async def add_to_tally(self, route: SessionRoute, suffix: str, size: int, allowance: int) -> int | None:
        """Add ``size`` to the tally ``budget_key(route) + suffix`` (the shared one with workers) if
        that keeps it within ``allowance``: None when added, else what it held before (nothing
        added). The WebSocket guard's tallies of encoded characters (``ENCODED_SUFFIX``: the
        same one HTTP uploads count against)."""
        lim = self.limits_for(route)
        if self._shared is not None:
            answer = await self._shared.reserve(budget_key(route) + suffix, size, allowance, lim.budget_window_s)
            return None if answer.ok else answer.used
        ledger = self.ledger(budget_key(route) + suffix, lim.budget_window_s)
        if ledger.used + size > allowance:
            return ledger.used
        ledger.used += size
        return None

    def _session_removed(self, session_id: str, _reason: str) -> None:
        """A session's own tally goes with it; a user's tally on a device stays for its window
        (a new session must not reset it); tallies whose window is over are dropped."""
        self._ledgers.pop(session_id, None)
        now = time.monotonic()
        window = self._defaults.budget_window_s
        for key in [k for k, v in self._ledgers.items() if now - v.since > window]:
            del self._ledgers[key]

    # --- the request hook ----------------------------------------------------
    def request(self, flow: http.HTTPFlow) -> Awaitable[None] | None:
        if already_answered(flow):
            return None
        route = route_of(flow)
        if route is None:
            return None
        req = flow.request
        lim = self.limits_for(route)
        threshold = lim.encoded_min_upload
        ledger = self.ledger(budget_key(route), lim.budget_window_s)  # ledger_of, limits looked up once
        origin = self._public.origin(route.host) if self._public is not None else None
        request_headers.normalise(req, origin, lambda url: page_key(_bytes(url)) in ledger.pages, flow.metadata)
        if origin is not None and _is_page(req):  # what a later Referer may name (before any rewrite)
            flow.metadata[PAGE_KEY] = _bytes(origin + req.path)
        data = request_user_data(req, ledger)
        verdict = (
            self._check_url(req, threshold)
            or _check_values("headers", "request header names and values",
                             names_and_values(data.new_header_names, data.new_header_values), threshold)
            or _check_values("cookies", "cookie names and values",
                             names_and_values(data.new_cookie_names, data.new_cookie_values), threshold)
        )
        if verdict is not None:
            _refuse(flow, verdict)
            return None
        verdict = self.over_budget(route, data.usage)
        if verdict is not None:
            repeat = _as_repeat(req, ledger, data) if verdict[0] == "budget.session" else None
            if repeat is not None:
                return self._pass_repeat(flow, route, ledger, repeat)
            _refuse(flow, verdict)
            return None
        enc = encoded.encoded_chars(_sent_text(req, names_and_values(data.new_header_names, data.new_header_values),
                                               names_and_values(data.new_cookie_names, data.new_cookie_values),
                                               query=not data.url_seen),
                                    cap=lim.encoded_session_allowance + 1)
        if self._shared is not None:  # the pool's tally decides (one budget for every worker)
            return self._reserve_then_allow(flow, route, ledger, data, enc)
        if enc:
            enc_ledger = self.ledger(budget_key(route) + ENCODED_SUFFIX, lim.budget_window_s)
            if enc_ledger.used + enc > lim.encoded_session_allowance:
                _refuse(flow, _encoded_verdict(enc_ledger.used, enc, lim))
                return None
            enc_ledger.used += enc
        ledger.used += data.usage.total
        _remember(ledger, data, flow)
        return None

    async def _reserve_then_allow(self, flow: http.HTTPFlow, route: SessionRoute, ledger: SessionLedger,
                                  data: RequestData, enc: int = 0) -> None:
        if enc and self._shared is not None:
            lim = self.limits_for(route)
            answer = await self._shared.reserve(budget_key(route) + ENCODED_SUFFIX, enc,
                                                lim.encoded_session_allowance, lim.budget_window_s)
            if not answer.ok:
                _refuse(flow, _encoded_verdict(answer.used, enc, lim))
                return
        verdict = await self.reserve_shared(route, data.usage)
        if verdict is not None:
            repeat = _as_repeat(flow.request, ledger, data)
            if repeat is not None:
                pending = self._pass_repeat(flow, route, ledger, repeat)
                if pending is not None:
                    await pending
                return
            _refuse(flow, verdict)
            return
        ledger.used += data.usage.total
        _remember(ledger, data, flow)

    def _pass_repeat(self, flow: http.HTTPFlow, route: SessionRoute, ledger: SessionLedger,
                     data: RequestData) -> Awaitable[None] | None:
        """Past the session budget: a request of a seen shape goes on in its turn (free), with
        the proxy's clock in place of any timestamp; too many at once are refused. A top-level
        navigation takes its turn from a bucket of its own."""
        req = flow.request
        if _is_navigation(req):
            wait = ledger.nav_throttle.reserve()
        else:
            wait = ledger.throttle.reserve()
        if wait is None:
            lim = self.limits_for(route)
            _refuse(flow, ("budget.session",
                           f"This device's {lim.session_budget}-byte session budget is used up (it starts afresh "
                           f"at about {self._reset_time(route)}); until then pages you already opened keep loading, "
                           "but only about one request a second. Wait a few seconds and reload.", 0))
            return None
        for name in data.dropped:
            req.headers.pop(name.decode(), None)
        req.path = with_proxy_time(req.path, time.time())
        # on a connection of its own towards the device: which browser connection a repeat came
        # on says nothing there (tester zc F3); the browser's own connection stays open (``response``)
        flow.metadata[CONNECTION_KEY] = req.headers.get_all("connection")
        req.headers["connection"] = "close"
        _remember(ledger, data, flow)
        return asyncio.sleep(wait) if wait > 0 else None

    def response(self, flow: http.HTTPFlow) -> None:
        """Cookies the device sets are the device's data, not the technician's: sent back
        unchanged they are neither checked nor counted. A WebSocket's accept is answered for
        the browser's own key (the device saw the proxy's: ``request_headers``)."""
        resp = flow.response
        route = route_of(flow)
        if resp is None or route is None:
            return
        browser_connection = flow.metadata.pop(CONNECTION_KEY, None)
        if isinstance(browser_connection, list):  # the device's connection is closed by now
            flow.request.headers.set_all("connection", browser_connection)
        if resp.status_code == 101:
            browser_key = flow.metadata.get(request_headers.BROWSER_WS_KEY)
            if isinstance(browser_key, str) and request_headers.WS_ACCEPT in resp.headers:
                resp.headers[request_headers.WS_ACCEPT] = request_headers.websocket_accept(browser_key)
        if not request_headers.has_field(resp.headers.fields, b"set-cookie"):  # one pass
            return
        pairs = [_bytes(value.split(";", 1)[0].strip()) for value in resp.headers.get_all("set-cookie")]
        ledger = self.ledger_of(route)  # the tally requests are checked against
        for pair in pairs:
            if pair:
                ledger.remember_device_cookie(pair)

    @staticmethod
    def _check_url(req: http.Request, threshold: int) -> Verdict | None:
        if len(req.data.path) < URL_MEMO_BELOW:
            return _url_verdict_memo(req.path, threshold)
        return _url_verdict(req.path, threshold)


URL_MEMO_BELOW = 1024  # bytes: shorter addresses' verdicts are remembered (``_url_verdict_memo``)


def _url_verdict(target: str, threshold: int) -> Verdict | None:
    """The URL path's and query's verdict (``_check_values`` on its segments and values)."""
    path, _, query = target.partition("?")
    segments = [_bytes(unquote(s, errors="surrogateescape")) for s in path.split("/") if s]
    verdict = _check_values("path", "URL path", segments, threshold)
    if verdict is not None or not query:
        return verdict
    return _check_values("query", "query string", _query_strings(query), threshold, _bytes(query))


def _query_strings(query: str) -> list[bytes]:
    """Every key and value of a query (or URL-encoded form), decoded, in order: keys carry data
    as well as values do."""
    out: list[bytes] = []
    for key, value in parse_qsl(query, keep_blank_values=True, errors="surrogateescape"):
        out.append(_bytes(key))
        out.append(_bytes(value))
    return out


def names_and_values(names: Sequence[bytes], values: Sequence[bytes]) -> list[bytes]:
    """``name, value, name, value, ...``: what a run split over names and values would join."""
    out: list[bytes] = []
    for name, value in zip(names, values, strict=True):
        out.append(name)
        out.append(value)
    return out


# A page's assets and polls repeat the same few addresses: their verdict is taken once. Exact:
# ``_url_verdict`` is a pure function of the address and the threshold (no clock, no session
# state) and, below ``URL_MEMO_BELOW`` bytes, deterministic too: the only sampled check
# (``encoded.random_text``, random offsets) needs at least ``max(1024, 4 * threshold)`` bytes
# (``any_alphabet``), and the values it is given are never longer than the address. A check
# stopped by an analysis budget raises, and an exception is not remembered.
_url_verdict_memo = functools.lru_cache(maxsize=1024)(_url_verdict)


ENCODED_SUFFIX = "|encoded"


def _encoded_verdict(used: int, enc: int, lim: ProxyLimits) -> Verdict:
    hours = lim.budget_window_s / 3600
    return ("upload.session_encoded",
            f"This request sends {enc} characters of encoded-looking data (base64, hex, byte lists, ...) to the "
            f"device; with the {used} you already sent to this device (counted per user and device over "
            f"{hours:g} hours, across your sessions) that passes the {lim.encoded_session_allowance}-character "
            "allowance (a file sent in pieces).", enc)


CONNECTION_KEY = "printgate.budget_connection"  # flow.metadata: a repeat's own Connection fields
PAGE_KEY = "printgate.budget_page"  # flow.metadata: this request's full session address, if a page


def _remember(ledger: SessionLedger, data: RequestData, flow: http.HTTPFlow) -> None:
    ledger.remember_digests(data.key_digests)  # request_user_data digested every key: not again
    ledger.remember_url(data.url_key)
    if data.loose_key and data.loose_key != data.shape_key:
        ledger.remember_shape(data.loose_key)
    ledger.remember_shape(data.shape_key)
    page = flow.metadata.get(PAGE_KEY)
    if isinstance(page, bytes):
        ledger.remember_page(page)


def _is_page(req: http.Request) -> bool:
    """A request whose address a later ``Referer`` may name: a GET navigation (or from a client
    that does not say)."""
    if req.method != "GET":
        return False
    mode = request_headers.field_value(req.headers.fields, b"sec-fetch-mode")  # headers.get, one pass
    return mode is None or mode == "navigate"


def _is_navigation(req: http.Request) -> bool:
    """A top-level navigation (the technician's click, reload or typed address)."""
    return (req.headers.get("sec-fetch-mode", "") == "navigate"
            and req.headers.get("sec-fetch-dest", "document") == "document")


def _as_repeat(req: http.Request, ledger: SessionLedger, data: RequestData) -> RequestData | None:
    """Past the budget: ``data`` itself when its shape was seen; else, when only its cache
    headers or its Referer made it new, the request without them (the caller drops them);
    else None."""
    if data.nothing_new:
        return data
    present = tuple(name for name in DROPPABLE_HEADERS if name.decode() in req.headers)
    if not present:
        return None
    plain = request_user_data(req, ledger, drop=present)
    return plain._replace(dropped=present) if plain.nothing_new else None


def _sent_text(req: http.Request, headers: list[bytes], cookies: list[bytes], *, query: bool = True) -> bytes:
    """The text a request carries towards the device, names and values decoded (percent-encoding
    and form encoding would break the runs), space-separated (no two short values make one long
    run): query (unless the address was sent before: counted then) and form fields, a textual
    body, new header fields and cookies (``headers`` and ``cookies``: names and values)."""
    _path, _, raw_query = req.path.partition("?")
    values = _query_strings(raw_query) if query and raw_query else []  # parse_qsl("") is []
    body = req.raw_content or b""
    if body:
        ctype = (request_headers.field_value(req.headers.fields, b"content-type") or "").split(";", 1)[0].strip().lower()
        if ctype == "application/x-www-form-urlencoded":
            for name, value in req.urlencoded_form.fields:  # every field, a repeated name's too
                values += (_bytes(name), _bytes(value))
        else:
            values.append(body)
    return b" ".join(values + headers + cookies)


def _refuse(flow: http.HTTPFlow, verdict: Verdict) -> None:
    rule, reason, size = verdict
    pages.block(flow, FlowDecision(True, rule, reason, "request", flow.request.headers.get("content-type", ""), size))


def _check_values(code: str, where: str, values: list[bytes], threshold: int, raw: bytes = b"") -> Verdict | None:
    """Binary, a document signature or an encoded file in one value, or split over several."""
    if not values:
        return None
    kind = "upload." + code
    carry = "carry" if where.endswith("s") else "carries"  # "request headers" / "query string"
    for value in values:
        if value and not sniff.is_textual_throughout(value):
            return f"{kind}_binary", f"The {where} {carry} binary data ({len(value)} bytes).", len(value)
        job = sniff.job_or_document_kind(value, anywhere=True) if value else None
        if job is not None:
            return f"{kind}_document", f"The {where} {carry} a {job} document ({len(value)} bytes).", len(value)
    hit = _first_hit(values, threshold) or (encoded.find_encoded(raw, threshold, strict=True) if raw else None)
    if hit is None:  # any alphabet (base85, bits, 0x lists, ...), the values together (issue 21 F3)
        hit = encoded.any_alphabet(b"".join(values), max(1024, 4 * threshold))
    if hit is not None:
        return f"{kind}_encoded", f"The {where} {carry} {hit.describe()}: an encoded file.", hit.length
    return None


def _first_hit(values: Iterable[bytes], threshold: int) -> encoded.EncodedHit | None:
    pieces = list(values)
    for value in pieces:
        if len(value) >= threshold // 2:
            hit = encoded.find_encoded(value, threshold, strict=True)
            if hit is not None:
                return hit
    return encoded.find_encoded_split(pieces, threshold)
