"""Garbage-collector settings for long-running servers (gateway, proxy workers).

CPython's cyclic collector walks every tracked object in a full (oldest
generation) collection. A serving process holds tens of thousands of
long-lived objects (imported modules, mitmproxy's master and addons, SQLAlchemy
metadata), so every full collection stalled all connections of that process;
under 100 concurrent proxy sessions those pauses were most of the p99 latency
(benchmarks/proxy.py: p99 140 ms -> 55 ms, and about 10 % more requests/s).

``tune_for_serving()`` moves everything alive after start-up into the
permanent generation (``gc.freeze``: never scanned again) and makes full scans
rarer. Short-lived cycles are still collected; only the rate of full scans drops.

Young and middle collections stay small: a collection stops the process for as
long as it scans its generations. At 10,000 allocations a young collection made
every ~80th request on a connection wait 5-15 ms (the proxy's whole p99 on one
connection: 9-12 ms, against 4-5 ms at 2,000). Each young collection moves the
objects of requests still in flight to the middle generation, where they become
garbage (a proxied flow is a web of cycles); a middle collection every 50 young
ones then scanned 40-130 ms of them with 20 connections, every 10 it is ~5 ms
(benchmarks/proxy.py and the measurements in docs/transfer-blocking.md). Full
collections keep their rate in allocations (one per 50 million).
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 2_000  # allocations between young collections (CPython default 700)
MIDDLE_THRESHOLD = 10  # young collections per middle one (default 10)
OLD_THRESHOLD = 2_500  # middle collections per full one (default 10): one per 50 million allocations


def tune_for_serving() -> None:
    """Call once, after the server has started (its long-lived objects exist)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, MIDDLE_THRESHOLD, OLD_THRESHOLD)
