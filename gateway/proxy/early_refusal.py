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
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Generator
from typing import Any

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

EARLY_KEY = "printgate.answered_unread"  # flow metadata: the request body was not read
DISCARDED_KEY = "printgate.body_discarded"  # how many body bytes were dropped unread

_Gen = Generator[Any, Any, None]


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


def install(linger_bytes: int = 256 * 1024) -> None:
    """Answer requests that addons answered on their headers without reading their bodies."""
    original = HttpStream.state_wait_for_request_headers
    if getattr(original, "_printgate_early", False):
        return

    @functools.wraps(original)
    def state_wait_for_request_headers(self: HttpStream, event: RequestHeaders) -> _Gen:
        yield from original(self, event)
        flow = self.flow
        if (event.end_stream or flow is None or flow.response is None or flow.error is not None
                or self.client_state != self.state_consume_request_body):
            return
        flow.metadata[EARLY_KEY] = True
        flow.response.headers["connection"] = "close"
        flow.response.timestamp_start = time.time()
        self.client_state = _discarding(self, linger_bytes)
        yield HttpResponseHeadersHook(flow)
        if (yield from self.check_killed(True)):
            return
        yield from self.send_response()

    state_wait_for_request_headers._printgate_early = True  # type: ignore[attr-defined]
    HttpStream.state_wait_for_request_headers = state_wait_for_request_headers  # type: ignore[method-assign]
