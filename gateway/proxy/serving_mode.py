"""What a serving proxy process leaves out that only checks mitmproxy itself (``python -O``'s share).

mitmproxy type-checks every field of every HTTP message it builds
(``MessageData.__post_init__``), only when ``__debug__`` is on: the proxy worker processes run
under ``python -O`` and never do it. The gateway's in-process proxy (``proxy_workers = 1``, the
default) runs without ``-O``. There each request and response raised and caught three
``TypeError``s (an ``Optional`` field is checked by trying its non-``None`` type first), and
their tracebacks are reference cycles: ~95 of the ~125 objects of cyclic garbage a request left
for the collector, and ~70 % of the collector's time (benchmarks/proxy.py; docs/transfer-blocking.md).

``skip_message_typechecks()`` gives the in-process proxy what ``-O`` gives the workers and
nothing else (asserts and every other check stay). ``printgate serve`` and the benchmarks call it;
the tests do not, so mitmproxy still checks the messages our addons build there.
"""

from __future__ import annotations

from mitmproxy import http


def _unchecked(_message: object) -> None:
    return None


def skip_message_typechecks() -> None:
    """Drop mitmproxy's debug-only per-message type checks in this process (idempotent)."""
    if __debug__:
        setattr(http.MessageData, "__post_init__", _unchecked)  # noqa: B010 - mypy: no method assignment
