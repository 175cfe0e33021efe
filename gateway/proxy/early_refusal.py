"""A request answered on its headers is answered at once; its body is never read into memory.

When an addon answers a request in ``requestheaders`` (no session, unknown
session host, a refused upload declared on its headers), mitmproxy still reads
the whole body into memory before it sends the answer: up to
``body_size_limit`` (32 MB) per request, chunked or not, without any session.
``install()`` changes that for the process: such a request gets its answer
right after its headers (``Connection: close``), the body that still arrives
is counted and dropped, never buffered, and after ``linger_bytes`` of it, or
once the body ended, the connection is closed. mitmproxy has no option for
this; ``tests/proxy/test_abuse.py`` fails if the hook point moves.

The same holds for a body without a declared length (chunked) that grows past
the largest body any rule could allow (``BODY_CAP_KEY``, set per flow by the
connection guard): it is certain to be refused, so it is not buffered further.
The proxy answers "too large" at once, drops the buffered part and what still
arrives (counted, never stored), and the refusal is audited as
``upload.too_large`` with the size seen.

While a hook runs (the session lookup, the audit write of a refusal, the
device's answer), mitmproxy goes on reading the client's socket and keeps
everything that arrives: body data in its event queue, bytes after a complete
request in its receive buffer, at loopback speed. Reading from a client is
therefore paused (``FlowControl``, given by the proxy that owns the
connection) while a request with a body runs its header hooks, and from the
end of each request until its answer is sent (HTTP/1 is answered in order
anyway); a client can never fill the proxy's memory while a hook waits.

A chunked body may end in trailer fields (``0\r\nX-T: ...\r\n\r\n``). mitmproxy's
HTTP/1 reader raises on them (trailers are "not implemented"): the client got no
answer at all, and nothing was audited. The chunked reader is wrapped instead
(``_TrailerKeeper``): a request's trailer is kept on the request
(``request.trailers``), where ``RequestLineGuard`` refuses it (``request.trailers``,
a 400 page, audited); a device's response trailer is dropped, never passed to the
browser.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Generator
from typing import Any, Protocol

import h11
from h11._readers import ChunkedReader
from mitmproxy import http
from mitmproxy.proxy.layers.http import (
    ErrorCode,
    HttpResponseHeadersHook,
    HttpStream,
    RequestData,
    RequestEndOfMessage,
    RequestHeaders,
    ResponseProtocolError,
    SendHttp,
)
from mitmproxy.proxy.layers.http._http1 import Http1Connection, Http1Server

from printgate.logs import get_logger

log = get_logger(__name__)

EARLY_KEY = "printgate.answered_unread"  # flow metadata: the request body was not read
BODY_CAP_KEY = "printgate.body_cap"  # flow metadata: buffer no more request body than this
DISCARDED_KEY = "printgate.body_discarded"  # how many body bytes were dropped unread

_Gen = Generator[Any, Any, None]


class FlowControl(Protocol):
    """Pauses and resumes reading from one client connection (by mitmproxy client id)."""

    def pause_reading(self, client_id: str) -> bool: ...
    def resume_reading(self, client_id: str) -> None: ...


_controls: list[FlowControl] = []


def register(control: FlowControl) -> None:
    """A proxy's connections become pausable (``DwaProxy.start``)."""
    _controls.append(control)


def unregister(control: FlowControl) -> None:
    if control in _controls:
        _controls.remove(control)


def _pause(stream: HttpStream) -> None:
    for control in list(_controls):
        if control.pause_reading(stream.context.client.id):
            return


def _resume(stream: HttpStream) -> None:
    for control in list(_controls):
        control.resume_reading(stream.context.client.id)


def _discarding(stream: HttpStream, linger_bytes: int) -> Callable[[Any], _Gen]:
    """A client state that drops request body events and closes once enough arrived."""

    def state(event: Any) -> _Gen:
        flow = stream.flow
        if isinstance(event, RequestData):
            flow.metadata[DISCARDED_KEY] = int(flow.metadata.get(DISCARDED_KEY, 0)) + len(event.data)
            if flow.metadata[DISCARDED_KEY] > linger_bytes:
                stream.client_state = stream.state_errored
                yield SendHttp(ResponseProtocolError(stream.stream_id, "body refused unread", ErrorCode.KILL),
                               stream.context.client)
        elif isinstance(event, RequestEndOfMessage):
            stream.client_state = stream.state_done
            yield from stream.flow_done()
        # trailers: dropped with the body

    return state


def _answer_now(stream: HttpStream, linger_bytes: int) -> _Gen:
    """Send the flow's response before the request body ended; drop the rest of the body."""
    flow = stream.flow
    assert flow.response is not None
    flow.metadata[EARLY_KEY] = True
    flow.response.headers["connection"] = "close"
    flow.response.timestamp_start = time.time()
    stream.client_state = _discarding(stream, linger_bytes)
    _pause(stream)  # nothing is queued while the response hooks (audit) run
    try:
        yield HttpResponseHeadersHook(flow)
        if (yield from stream.check_killed(True)):
            return
        yield from stream.send_response()
    finally:
        _resume(stream)  # the rest of the body is counted away, then the connection closed


def _over_cap(stream: HttpStream, linger_bytes: int, size: int) -> _Gen:
    from gateway.proxy import pages
    from gateway.proxy.decision import FlowDecision

    flow = stream.flow
    stream.request_body_buf.clear()
    flow.metadata[DISCARDED_KEY] = size
    pages.block(flow, FlowDecision(
        True, "upload.too_large", f"A request body of more than {size - 1} bytes is over every allowed size.",
        "request", flow.request.headers.get("content-type", ""), size))
    yield from _answer_now(stream, linger_bytes)


class _TrailerKeeper:
    """h11's chunked body reader whose end-of-message carries no trailer: a request's trailer
    is kept on ``request.trailers`` (refused later, see the module docstring), a response's is
    dropped."""

    def __init__(self, inner: ChunkedReader, request: http.Request | None) -> None:
        self._inner = inner
        self._request = request

    def __call__(self, buf: Any) -> Any:
        event = self._inner(buf)
        if isinstance(event, h11.EndOfMessage) and event.headers:
            if self._request is not None:
                self._request.trailers = http.Headers([(bytes(k), bytes(v)) for k, v in event.headers])
            else:
                log.info("dwa.response_trailer_dropped", fields=len(event.headers))
            return h11.EndOfMessage()
        return event

    def read_eof(self) -> Any:
        return self._inner.read_eof()


def _install_trailer_keeper() -> None:
    read_body = Http1Connection.read_body
    if getattr(read_body, "_printgate_trailers", False):
        return

    @functools.wraps(read_body)
    def keeping_trailers(self: Http1Connection, event: Any) -> _Gen:
        if type(self.body_reader) is ChunkedReader:
            request = self.request if isinstance(self, Http1Server) else None
            self.body_reader = _TrailerKeeper(self.body_reader, request)  # type: ignore[assignment]
        yield from read_body(self, event)

    keeping_trailers._printgate_trailers = True  # type: ignore[attr-defined]
    Http1Connection.read_body = keeping_trailers  # type: ignore[method-assign]


def install(linger_bytes: int = 256 * 1024) -> None:
    """Answer requests that addons answered on their headers without reading their bodies,
    and requests whose body outgrows its cap without buffering the rest; chunked trailers are
    kept (requests) or dropped (responses) instead of breaking the connection."""
    _install_trailer_keeper()
    original = HttpStream.state_wait_for_request_headers
    if getattr(original, "_printgate_early", False):
        return
    consume = HttpStream.state_consume_request_body

    @functools.wraps(consume)
    def state_consume_request_body(self: HttpStream, event: Any) -> _Gen:
        cap = self.flow.metadata.get(BODY_CAP_KEY) if self.flow is not None else None
        if isinstance(cap, int) and isinstance(event, RequestData):
            size = len(self.request_body_buf) + len(event.data)
            if size > cap:
                yield from _over_cap(self, linger_bytes, size)
                return
        if isinstance(event, RequestEndOfMessage):
            _pause(self)  # the request is complete: nothing more is read until it is answered
        yield from consume(self, event)

    done = HttpStream.flow_done

    @functools.wraps(done)
    def flow_done(self: HttpStream) -> _Gen:
        _resume(self)  # answered: the next request (or the WebSocket) may come
        yield from done(self)

    @functools.wraps(original)
    def state_wait_for_request_headers(self: HttpStream, event: RequestHeaders) -> _Gen:
        if event.end_stream:
            _pause(self)  # a complete request: nothing more is read until it is answered
            yield from original(self, event)
            return
        _pause(self)  # a body: nothing of it is queued while the header hooks run
        try:
            yield from original(self, event)
        finally:
            _resume(self)
        flow = self.flow
        if (event.end_stream or flow is None or flow.response is None or flow.error is not None
                or self.client_state != self.state_consume_request_body):
            return
        yield from _answer_now(self, linger_bytes)

    state_wait_for_request_headers._printgate_early = True  # type: ignore[attr-defined]
    HttpStream.state_wait_for_request_headers = state_wait_for_request_headers  # type: ignore[method-assign]
    HttpStream.state_consume_request_body = state_consume_request_body  # type: ignore[method-assign]
    HttpStream.flow_done = flow_done  # type: ignore[method-assign]
