"""The request line and framing headers, checked first: nothing but origin-form reaches a device.

A browser sends origin-form (``GET /path HTTP/1.1``). Absolute-form
(``GET http://127.0.0.1:5432/ HTTP/1.1``) would make mitmproxy send the
request line on with the tunnel's internal address in it, authority-form
(``CONNECT``) would open a tunnel and asterisk-form (``OPTIONS *``) has no
page behind it. Absolute-form naming the session host itself is turned into
origin-form; every other form is refused. Framing headers a smuggling attempt
relies on (two ``Content-Length``, ``Content-Length`` with
``Transfer-Encoding``, several ``Host``) are refused too: the device must never
see a body framed differently from how the proxy read it.

A ``CONNECT`` is refused as ``request.connect`` whatever its ``Host`` (a foreign
host is not first answered as "no such session"), a request with more than
``max_headers`` header fields (``MAX_REQUEST_HEADERS``, 64; a browser sends about
20) is refused as ``request.too_many_headers`` before any device sees it (a device
would answer its own unaudited 400), and a chunked body ending in a trailer
(``early_refusal`` keeps the trailer on the request) is refused as
``request.trailers``: mitmproxy cannot pass trailers on, and they are one more
place for data. Each refusal is a 400 page with ``Connection: close``, audited
for the session the request belongs to (when its host names one).
"""

from __future__ import annotations

from mitmproxy import http

from gateway.proxy import pages
from gateway.proxy.decision import FlowDecision, already_answered
from gateway.proxy.deps import PublicAddress
from printgate.logs import get_logger

log = get_logger(__name__)

MAX_REQUEST_HEADERS = 64


def _refuse(flow: http.HTTPFlow, rule: str, reason: str) -> None:
    pages.bad_request(flow, FlowDecision(True, rule, reason, "request"))
    log.info("dwa.request_line_refused", rule=rule, source=flow.client_conn.peername)


def _authority_matches(authority: str, host_header: str, public: PublicAddress) -> bool:
    """An absolute-form authority is acceptable only as the session host (and public port) itself."""
    given = authority.lower()
    host = host_header.lower()
    if given == host:
        return True
    default = 443 if public.scheme == "https" else 80
    port = public.port or default
    strip = f":{port}"
    return given.removesuffix(strip) == host.removesuffix(strip)


class RequestLineGuard:
    def __init__(self, public: PublicAddress, max_headers: int = MAX_REQUEST_HEADERS) -> None:
        self._public = public
        self._max_headers = max_headers

    def http_connect(self, flow: http.HTTPFlow) -> None:
        """Authority-form: the proxy opens no tunnels for browsers."""
        _refuse(flow, "request.connect", "The proxy does not open tunnels (CONNECT).")

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        request = flow.request
        if request.method.upper() == "CONNECT":
            # named for what it is, also when its Host names no session (answered "no such
            # session" by SessionAuth before): the tunnel is what is refused
            _refuse(flow, "request.connect", "The proxy does not open tunnels (CONNECT).")
            return
        if already_answered(flow):
            return
        if len(request.headers.fields) > self._max_headers:
            _refuse(flow, "request.too_many_headers",
                    f"A request may carry at most {self._max_headers} header fields; this one has "
                    f"{len(request.headers.fields)}.")
            return
        hosts = lengths = 0
        transfer: list[bytes] = []
        for name, value in request.headers.fields:  # one pass over the raw header fields
            name = name.lower()
            if name == b"host":
                hosts += 1
            elif name == b"content-length":
                lengths += 1
            elif name == b"transfer-encoding":
                transfer.append(value)
        if hosts != 1:
            _refuse(flow, "request.host_header", "A request needs exactly one Host header.")
            return
        if lengths > 1:
            _refuse(flow, "request.framing", "A request may declare its length only once.")
            return
        if transfer and (lengths or len(transfer) > 1 or transfer[0].strip().lower() != b"chunked"):
            _refuse(flow, "request.framing", "Ambiguous request framing (Transfer-Encoding).")
            return
        # ``data``: the raw bytes, not the decoding properties. Exact: no authority bytes decode
        # to an empty one, and a UTF-8 (surrogateescape) text starts with "/" iff its bytes do
        if request.data.authority and request.authority:
            if request.scheme != self._public.scheme or not _authority_matches(
                request.authority, request.headers["host"], self._public
            ):
                _refuse(flow, "request.absolute_form", "The request names another server than this session.")
                return
            request.authority = ""  # origin-form towards the device
        if not request.data.path.startswith(b"/"):
            _refuse(flow, "request.target", "The request target must be a path on this session's device.")
            return

    def request(self, flow: http.HTTPFlow) -> None:
        if already_answered(flow):
            return
        if flow.request.trailers:  # kept by early_refusal's chunked reader: never passed on
            _refuse(flow, "request.trailers",
                    "A request body may not end in trailer fields (headers after a chunked body).")
