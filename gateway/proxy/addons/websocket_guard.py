"""WebSockets carry status updates, not files.

Binary frames are dropped both ways, and so are text frames holding a control
byte other than tab, line feed, form feed and carriage return (NUL, ESC, ...:
HTTP text bodies may hold none either). Text frames from the browser count
against the session's transfer budget, each its length plus ``MESSAGE_COST``
(an empty message is no free symbol: tester wsx F3), and may carry no encoded
file or document; their encoded-looking characters are added to the same
per-user-and-device tally HTTP uploads count against (``ENCODED_SUFFIX``,
``encoded_session_allowance``: tester wsx F2). Text frames from the device may
carry no encoded file or document and stay small, and their encoded-looking
characters are summed per user and device too (``DEVICE_SUFFIX``,
``DEVICE_ENCODED_ALLOWANCE``: a file cut into many messages, each under the
per-message allowance, tester wsx F4). A dropped frame is audited as
``dwa.transfer_blocked`` (the connection stays up: the page's next status
update still arrives): the first ``ITEMISED_DROPS`` of a WebSocket each with a
record of its own, every later one counted by rule in the WebSocket's
``dwa.websocket`` record (``dropped_by_rule``): a script flooding refused
messages wrote 74,397 records in 72 s (tester wsx). Opening a WebSocket costs ``MESSAGE_COST`` too: once
the session budget is spent, a new WebSocket is refused (audited) like every
further browser message.

Nothing but a WebSocket follows a ``101 Switching Protocols``: a request's ``Upgrade`` to
anything else (TLS, h2c, a made-up protocol) never reaches the device, and a device answering
101 to a request that is not a WebSocket handshake is refused (``upgrade.not_websocket``) and its
connection closed. mitmproxy would otherwise turn the connection into a raw TCP pipe that no
check sees (its ``rawtcp`` option is off as well: ``gateway.proxy.server``).

No frame is ever compressed: the browser's ``Sec-WebSocket-Extensions`` offer
(permessage-deflate) is not passed to the device, so neither side may send a
compressed frame and nothing is inflated in the proxy (a few KB of deflate
can inflate to gigabytes before any check sees the message). A device that
answers with an extension nobody offered is refused (``websocket.extension``)
and its connection closed; a compressed frame from either side is a protocol
error that closes the WebSocket.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING

from mitmproxy import http, websocket

from gateway.proxy import encoded, pages, request_headers, sniff, ws_control
from gateway.proxy.addons.transfer_budget import ENCODED_SUFFIX
from gateway.proxy.budgets import UserData
from gateway.proxy.decision import FlowDecision, already_answered, route_of
from gateway.proxy.limits import ProxyLimits
from printgate.domain import AuditEventIn, Outcome, event_types
from printgate.interfaces import AuditSink
from printgate.logs import get_logger

if TYPE_CHECKING:
    from gateway.proxy.addons.transfer_budget import TransferBudget
    from gateway.proxy.routes import SessionRoute

log = get_logger(__name__)

DROPPED_KEY = "printgate.ws_dropped"
DROPPED_RULES_KEY = "printgate.ws_dropped_rules"  # flow metadata: {rule: drops past ITEMISED_DROPS}
ITEMISED_DROPS = 20  # a WebSocket's refused messages with an audit record each; the rest are counted
OFFER_DROPPED_KEY = "printgate.ws_extensions_dropped"
EXTENSIONS = "sec-websocket-extensions"
_EXTENSIONS = EXTENSIONS.encode()
_UPGRADE = b"upgrade"
_WS_FIELDS = frozenset({_UPGRADE, b"sec-websocket-key"})
Verdict = tuple[str, str]
MESSAGE_COST = 1  # budget bytes a browser message (or a new WebSocket) costs on top of its length
DEVICE_SUFFIX = "|ws-device-encoded"  # the tally of encoded characters from the device over WebSockets
# encoded-looking characters (``encoded.encoded_chars``) a device may send one user over WebSockets
# within ``budget_window_s``: status JSON holds none (a token or hash is under the 96-character run)
DEVICE_ENCODED_ALLOWANCE = 16 * 1024


def is_websocket_upgrade(request: http.Request) -> bool:
    return (request.headers.get("upgrade", "").lower() == "websocket"
            or "sec-websocket-key" in request.headers)


class WebSocketGuard:
    def __init__(self, limits: ProxyLimits, budget: TransferBudget | None = None,
                 audit: AuditSink | None = None) -> None:
        self._limits = limits
        self._budget = budget
        self._audit = audit
        ws_control.install()  # control frames carry nothing across (Pings answered here)

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        """An upgrade to anything but a WebSocket, and the browser's extension offer
        (permessage-deflate), never reach the device."""
        if already_answered(flow):
            return
        fields = flow.request.headers.fields
        if request_headers.has_field(fields, _UPGRADE) and not is_websocket_upgrade(flow.request):
            _drop_upgrade(flow)
        if not request_headers.has_field(fields, _EXTENSIONS):
            return  # exact: without an offer there is nothing to drop, upgrade or not (one pass)
        if not is_websocket_upgrade(flow.request):
            return
        if EXTENSIONS in flow.request.headers:
            flow.metadata[OFFER_DROPPED_KEY] = flow.request.headers.get_all(EXTENSIONS)
            del flow.request.headers[EXTENSIONS]

    def response(self, flow: http.HTTPFlow) -> None:
        """A device switching protocols to anything but a plain WebSocket is refused: to another
        protocol (a raw pipe no check would see), or with an extension nobody offered."""
        resp = flow.response
        if resp is None or resp.status_code != 101:
            return
        if flow.websocket is None:  # mitmproxy found no WebSocket handshake in the request and answer
            _refuse_switch(flow, "upgrade.not_websocket",
                           "The device tried to switch the connection to another protocol "
                           f"({resp.headers.get('upgrade', 'none named')[:60]}); only WebSockets are let through.",
                           "protocol upgrade")
        elif EXTENSIONS in resp.headers:
            _refuse_switch(flow, "websocket.extension",
                           f"The device answered with WebSocket extension(s) nobody offered: {resp.headers[EXTENSIONS][:100]}.",
                           "websocket upgrade")

    def request(self, flow: http.HTTPFlow) -> Awaitable[None] | None:
        """A new WebSocket costs ``MESSAGE_COST``: past the session budget it is refused."""
        if self._budget is None or not _may_upgrade(flow.request.headers.fields) or already_answered(flow):
            return None
        if not is_websocket_upgrade(flow.request):
            return None
        route = route_of(flow)
        if route is None:
            return None
        return self._charge_handshake(flow, route, self._budget)

    async def _charge_handshake(self, flow: http.HTTPFlow, route: SessionRoute, budget: TransferBudget) -> None:
        data = UserData((("websocket", MESSAGE_COST),))
        over = budget.over_budget(route, data) or await budget.reserve_shared(route, data)
        if over is None:
            budget.charge(route, data.total)
            return
        pages.block(flow, FlowDecision(True, over[0], "A new WebSocket: " + over[1], "request", "websocket upgrade",
                                       data.total))

    async def websocket_message(self, flow: http.HTTPFlow) -> None:
        if flow.websocket is None or not flow.websocket.messages:
            return
        message = flow.websocket.messages[-1]
        route = route_of(flow)
        limits = self._budget.limits_for(route) if self._budget is not None else self._limits
        verdict, enc = self._assess(message, limits)
        if verdict is None and route is not None and self._budget is not None:
            if message.from_client:
                verdict = await self._charge_browser(route, self._budget, len(message.content), enc, limits)
            elif enc:
                verdict = await self._charge_device(route, self._budget, enc)
        if verdict is None:
            return
        message.drop()
        dropped = flow.metadata[DROPPED_KEY] = int(flow.metadata.get(DROPPED_KEY, 0)) + 1
        if dropped <= ITEMISED_DROPS:
            await self._audit_drop(flow, message, verdict)
            return
        counted = flow.metadata.setdefault(DROPPED_RULES_KEY, {})
        counted[verdict[0]] = counted.get(verdict[0], 0) + 1
        if dropped == ITEMISED_DROPS + 1:
            route = route_of(flow)
            log.warning("dwa.websocket_drops_counted", session=route.session_id if route else None,
                        itemised=ITEMISED_DROPS)

    @staticmethod
    async def _charge_browser(route: SessionRoute, budget: TransferBudget, size: int, enc: int,
                              lim: ProxyLimits) -> Verdict | None:
        """A browser message's bytes (plus ``MESSAGE_COST``) against the session budget, its
        encoded-looking characters against the tally HTTP uploads count against."""
        data = UserData((("websocket", size), ("message", MESSAGE_COST)))
        over = budget.over_budget(route, data)
        if over is not None:
            return over[0], over[1]
        if enc:
            held = await budget.add_to_tally(route, ENCODED_SUFFIX, enc, lim.encoded_session_allowance)
            if held is not None:
                return ("websocket.session_encoded_from_browser",
                        f"This WebSocket message sends {enc} characters of encoded-looking data (base64, hex, "
                        f"byte lists, ...) to the device; with the {held} you already sent to this device (counted "
                        f"per user and device over {lim.budget_window_s / 3600:g} hours, across your sessions, "
                        f"HTTP requests too) that passes the {lim.encoded_session_allowance}-character allowance "
                        "(a file sent in pieces).")
        over = await budget.reserve_shared(route, data)
        if over is not None:
            return over[0], over[1]
        budget.charge(route, data.total)
        return None

    @staticmethod
    async def _charge_device(route: SessionRoute, budget: TransferBudget, enc: int) -> Verdict | None:
        """A device message's encoded-looking characters against the user's tally on this device."""
        held = await budget.add_to_tally(route, DEVICE_SUFFIX, enc, DEVICE_ENCODED_ALLOWANCE)
        if held is None:
            return None
        return ("websocket.session_encoded_from_device",
                f"A WebSocket message from the device carries {enc} characters of encoded-looking data; with the "
                f"{held} its WebSocket messages already passed on to this user that is over the "
                f"{DEVICE_ENCODED_ALLOWANCE}-character allowance (a file sent in pieces).")

    def _assess(self, message: websocket.WebSocketMessage, lim: ProxyLimits) -> tuple[Verdict | None, int]:
        """The message's verdict and, when it passes, its encoded-looking characters (one
        analysis budget for both)."""
        with encoded.analysis_budget():
            verdict = self._check(message, lim)
            if verdict is not None or not message.content:
                return verdict, 0
            cap = (lim.encoded_session_allowance if message.from_client else DEVICE_ENCODED_ALLOWANCE) + 1
            try:
                return None, encoded.encoded_chars(message.content, cap=cap)
            except encoded.TooComplexToCheck as exc:
                return _too_complex(message, exc), 0

    def _check(self, message: websocket.WebSocketMessage, lim: ProxyLimits) -> Verdict | None:
        try:
            with encoded.analysis_budget():
                return self._check_content(message, lim)
        except encoded.TooComplexToCheck as exc:  # crafted to stall the proxy: fail closed
            return _too_complex(message, exc)

    def _check_content(self, message: websocket.WebSocketMessage, lim: ProxyLimits) -> Verdict | None:
        side = "browser" if message.from_client else "device"
        if not message.is_text:
            return f"websocket.binary_from_{side}", f"A binary WebSocket frame from the {side} was dropped."
        content = message.content
        if not message.from_client and len(content) > lim.max_ws_message:
            return ("websocket.too_large",
                    f"A WebSocket frame of {len(content)} bytes from the device is over the {lim.max_ws_message}-byte limit.")
        if content and not sniff.is_textual_throughout(content):
            return (f"websocket.control_bytes_from_{side}",
                    f"A WebSocket text frame from the {side} holds control bytes (NUL, ESC, ...): binary data.")
        job = sniff.job_or_document_kind(content, anywhere=message.from_client)
        if job is not None:
            return f"websocket.document_from_{side}", f"A WebSocket frame from the {side} carries a {job} document."
        threshold = lim.encoded_min_upload if message.from_client else lim.encoded_min_download
        allowance = lim.encoded_allowance_upload if message.from_client else lim.encoded_allowance_download
        hit = (encoded.find_encoded(content, threshold, strict=message.from_client)
               or encoded.encoded_total(content, allowance) or encoded.any_alphabet(content, allowance))
        if hit is not None:
            return (f"websocket.encoded_from_{side}",
                    f"A WebSocket frame from the {side} carries {hit.describe()}: an encoded file.")
        return None

    async def _audit_drop(self, flow: http.HTTPFlow, message: websocket.WebSocketMessage, verdict: Verdict) -> None:
        rule, reason = verdict
        route = route_of(flow)
        log.info("dwa.websocket_message_dropped", session=route.session_id if route else None, rule=rule,
                 size=len(message.content))
        if self._audit is None:
            return
        peer = flow.client_conn.peername
        details: dict[str, object] = {
            "method": flow.request.method,
            "path": flow.request.path.split("?", 1)[0],
            "blocked": True,
            "rule": rule,
            "reason": reason,
            "direction": "request" if message.from_client else "response",
            "transfer_type": "websocket text frame" if message.is_text else "websocket binary frame",
            "transfer_size": len(message.content),
            "where": "websocket",
        }
        try:
            await self._audit.append(AuditEventIn(
                type=event_types.DWA_TRANSFER_BLOCKED, outcome=Outcome.BLOCKED,
                session_id=route.session_id if route else None,
                source_ip=str(peer[0]) if peer else None, details=details,
            ))
        except Exception as exc:  # the frame is dropped either way; operators see the failure
            log.error("dwa.audit_failed", error=str(exc), type=event_types.DWA_TRANSFER_BLOCKED)
            flow.kill()  # what cannot be audited does not go on (fail closed)


def _may_upgrade(fields: tuple[tuple[bytes, bytes], ...]) -> bool:
    """An ``Upgrade`` or ``Sec-WebSocket-Key`` field (one pass: the request hook runs on every request)."""
    for key, _ in fields:
        if key.lower() in _WS_FIELDS:
            return True
    return False


def _too_complex(message: websocket.WebSocketMessage, exc: encoded.TooComplexToCheck) -> Verdict:
    side = "browser" if message.from_client else "device"
    return f"websocket.too_complex_from_{side}", f"A WebSocket frame from the {side} was dropped, not let through unchecked: {exc}."


def _drop_upgrade(flow: http.HTTPFlow) -> None:
    """Remove a non-WebSocket upgrade request (``Upgrade``, its ``Connection`` token, h2c's
    ``HTTP2-Settings``): the device answers the request as it is, on the same connection."""
    headers = flow.request.headers
    del headers["upgrade"]
    if "http2-settings" in headers:
        del headers["http2-settings"]
    tokens = [t.strip() for v in headers.get_all("connection") for t in v.split(",")]
    kept = [t for t in tokens if t and t.lower() not in ("upgrade", "http2-settings")]
    if "connection" in headers:
        del headers["connection"]
    if kept:
        headers["connection"] = ", ".join(kept)


def _refuse_switch(flow: http.HTTPFlow, rule: str, reason: str, what: str) -> None:
    """The browser gets the refusal (audited by the audit addon); the device's side of the
    connection has switched protocols, so it is closed, never reused."""
    flow.websocket = None
    pages.block(flow, FlowDecision(True, rule, reason, "response", what, 0))
    if flow.response is not None:
        flow.response.headers["connection"] = "close"
